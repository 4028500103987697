"""``python -m medsora.data check ROOT``: decode every video of a data set and summarise it."""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from tqdm import tqdm

from medsora.data.manifest import ManifestError, VideoEntry, load_entries
from medsora.data.sources import UnreadableVideo, probe_video, read_video, source_format

__all__ = ["CheckReport", "check_entries", "format_report", "main"]

_CHUNK = 256  # frames per read when checking frame folders and DICOM series


@dataclass
class CheckReport:
    """What a scan found: counts, ranges, and the unreadable files with their reasons."""

    root: Path
    total: int = 0
    formats: Counter = field(default_factory=Counter)
    modalities: Counter = field(default_factory=Counter)
    bad_modalities: Counter = field(default_factory=Counter)
    heights: list = field(default_factory=list)
    widths: list = field(default_factory=list)
    lengths: list = field(default_factory=list)
    fps: list = field(default_factory=list)
    unreadable: list = field(default_factory=list)  # (path, reason)


def _kind(path: Path) -> str:
    """A label per source type: the folder kind, or the file extension."""
    if path.is_dir():
        try:
            return source_format(path)
        except UnreadableVideo:
            return "folder"
    name = path.name.lower()
    return "nii.gz" if name.endswith(".nii.gz") else (path.suffix.lower().lstrip(".") or "no extension")


def _inspect(entry: VideoEntry, axis: int, slice_index: Optional[int]) -> dict:
    """Header facts, then a decode of every frame without holding them all in memory.

    Video files stream through to their last frame (only that one is kept); frame
    folders and DICOM series are read in chunks; DICOM files and NIfTI volumes are
    decoded whole, as their readers always do.
    """
    meta = probe_video(entry.path, axis=axis)
    count = int(meta.get("num_frames") or 0)
    options = {"axis": axis, "slice_index": slice_index}
    if count > 0 and meta["format"] == "video":
        _, full = read_video(entry.path, indices=[count - 1], **options)
    elif count > 0 and meta["format"] in ("frames", "dicom_series"):
        for start in range(0, count, _CHUNK):
            _, full = read_video(entry.path, indices=list(range(start, min(start + _CHUNK, count))), **options)
    else:
        frames, full = read_video(entry.path, **options)
        count = len(frames)
    return {"height": int(full["height"]), "width": int(full["width"]), "frames": count, "fps": full.get("fps")}


def check_entries(root: Path, entries: Sequence[VideoEntry], axis: int = 2, slice_index: Optional[int] = None,
                  progress: bool = True) -> CheckReport:
    """Decode every entry (with a progress bar) and collect the summary."""
    report = CheckReport(root=root, total=len(entries))
    for entry in tqdm(entries, desc="checking", unit="video", disable=not progress, file=sys.stderr):
        report.modalities[entry.modality] += 1
        report.formats[_kind(entry.path)] += 1
        try:
            facts = _inspect(entry, axis, slice_index)
        except UnreadableVideo as err:
            report.unreadable.append((entry.path, err.reason))
            report.bad_modalities[entry.modality] += 1
            continue
        report.heights.append(facts["height"])
        report.widths.append(facts["width"])
        report.lengths.append(facts["frames"])
        if facts["fps"]:
            report.fps.append(float(facts["fps"]))
    return report


def _span(values: list, unit: str = "") -> str:
    if not values:
        return "—"
    low, high = min(values), max(values)
    fmt = (lambda v: f"{v:g}") if isinstance(low, float) else str
    return f"{fmt(low)}{unit}" if low == high else f"{fmt(low)}–{fmt(high)}{unit}"


def format_report(report: CheckReport) -> str:
    """The summary as markdown tables."""
    lines = [f"# {report.total} videos under {report.root}", "", "| format | videos |", "|---|---|"]
    lines += [f"| {name} | {count} |" for name, count in sorted(report.formats.items())]
    lines += ["", "| modality | videos | unreadable |", "|---|---|---|"]
    lines += [f"| {name} | {count} | {report.bad_modalities[name]} |" for name, count in sorted(report.modalities.items())]
    sizes = sorted(set(zip(report.heights, report.widths)))
    lines += [
        "",
        f"- height: {_span(report.heights, ' px')}; width: {_span(report.widths, ' px')} "
        f"({len(sizes)} distinct H×W{': ' + ', '.join(f'{h}×{w}' for h, w in sizes[:6]) if sizes else ''}"
        f"{' …' if len(sizes) > 6 else ''})",
        f"- length: {_span(report.lengths, ' frames')}",
        f"- frame rate: {_span(report.fps, ' fps')}",
        f"- unreadable: {len(report.unreadable)}",
    ]
    for path, reason in report.unreadable:
        lines.append(f"  - {path}: {reason}")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m medsora.data", description="Data set tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="decode every video of a data set and print a summary; "
                                              "exit 1 when any file is unreadable")
    check.add_argument("root", help="data folder, a manifest (.csv/.jsonl) inside one, or 'demo'")
    check.add_argument("--manifest", default=None, help="manifest relative to ROOT (default: manifest.jsonl/.csv "
                                                        "if present, else a scan of the folder)")
    check.add_argument("--nifti-axis", type=int, default=2, help="slice axis for NIfTI volumes (data.nifti_axis)")
    check.add_argument("--nifti-slice", type=int, default=None, help="slice shown for 4-D NIfTI (data.nifti_slice)")
    check.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    root, manifest = Path(args.root).expanduser(), args.manifest
    if args.root == "demo":
        from medsora.data.demo import ensure_demo

        root = ensure_demo()
    elif root.is_file() and root.suffix.lower() in (".csv", ".jsonl", ".ndjson"):
        root, manifest = root.parent, root.name
    try:
        entries = load_entries(root, manifest)
    except ManifestError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    report = check_entries(root, entries, args.nifti_axis, args.nifti_slice, progress=not args.no_progress)
    print(format_report(report))
    return 1 if report.unreadable else 0
