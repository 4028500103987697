"""``python -m medsora.data check ROOT [experiment=NAME] [key=value ...]``: decode every video of a data set
and summarise it under a run's clip settings.

The settings come from the run's config (``experiment=``, ``data=`` and ``data.*`` overrides as
for ``medsora.fit``, your own files through ``--config-dir DIR``; ``data=folder`` when no experiment is named): the report then says how many
videos are shorter than a clip, how many clips each split gives (``data.clips_per_video``), which
files are refused for their frame size (``data.max_frame_pixels``) and which parts of the folder
layout are ambiguous — the figures training logs at start-up.
"""
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
from medsora.data.sources.downscale import FrameTooLarge

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
    too_large: list = field(default_factory=list)  # (path, reason): frames over data.max_frame_pixels
    frame_counts: list = field(default_factory=list)  # per entry, 0 when unreadable
    layout: list = field(default_factory=list)  # notes on ambiguous or skipped parts of the folder
    clips: object = None  # medsora.data.summary.ClipSummary under the run's settings


def _kind(path: Path) -> str:
    """A label per source type: the folder kind, or the file extension."""
    if path.is_dir():
        try:
            return source_format(path)
        except UnreadableVideo:
            return "folder"
    name = path.name.lower()
    return "nii.gz" if name.endswith(".nii.gz") else (path.suffix.lower().lstrip(".") or "no extension")


def _inspect(entry: VideoEntry, axis: int, slice_index: Optional[int], short_side: Optional[int] = None,
             max_pixels: Optional[int] = None) -> dict:
    """Header facts, then a decode of every frame without holding them all in memory.

    Video files stream through to their last frame (only that one is kept); frame
    folders, TIFF stacks and DICOM series are read in chunks; DICOM files and NIfTI volumes are
    decoded whole, as their readers always do. Frames are scaled to ``short_side`` as they are
    decoded; sources over ``max_pixels`` are refused from their headers.
    """
    meta = probe_video(entry.path, axis=axis, max_pixels=max_pixels)
    count = int(meta.get("num_frames") or 0)
    options = {"axis": axis, "slice_index": slice_index, "short_side": short_side, "max_pixels": max_pixels}
    if count > 0 and meta["format"] == "video":
        _, full = read_video(entry.path, indices=[count - 1], **options)
    elif count > 0 and meta["format"] in ("frames", "dicom_series", "tiff_stack"):
        for start in range(0, count, _CHUNK):
            _, full = read_video(entry.path, indices=list(range(start, min(start + _CHUNK, count))), **options)
    else:
        frames, full = read_video(entry.path, **options)
        count = len(frames)
    return {"height": int(full["height"]), "width": int(full["width"]), "frames": count, "fps": full.get("fps")}


def check_entries(root: Path, entries: Sequence[VideoEntry], axis: int = 2, slice_index: Optional[int] = None,
                  progress: bool = True, short_side: Optional[int] = None,
                  max_pixels: Optional[int] = None) -> CheckReport:
    """Decode every entry (with a progress bar) and collect the summary."""
    report = CheckReport(root=root, total=len(entries))
    for entry in tqdm(entries, desc="checking", unit="video", disable=not progress, file=sys.stderr):
        report.modalities[entry.modality] += 1
        report.formats[_kind(entry.path)] += 1
        report.frame_counts.append(0)
        try:
            facts = _inspect(entry, axis, slice_index, short_side, max_pixels)
        except FrameTooLarge as err:
            report.too_large.append((entry.path, err.reason))
            report.bad_modalities[entry.modality] += 1
            continue
        except UnreadableVideo as err:
            report.unreadable.append((entry.path, err.reason))
            report.bad_modalities[entry.modality] += 1
            continue
        report.frame_counts[-1] = facts["frames"]
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
    if report.too_large:
        lines.append(f"- WARNING: {len(report.too_large)} videos refused for their frame size (data.max_frame_pixels):")
        lines += [f"  - {path}: {reason}" for path, reason in report.too_large]
    if report.layout:
        lines.append(f"- WARNING: {len(report.layout)} ambiguous or skipped parts of the folder layout:")
        lines += [f"  - {note}" for note in report.layout]
    if report.clips is not None:
        lines += ["", "## Clips under the run's settings", ""]
        lines += [f"- {line}" for line in report.clips.lines()]
    return "\n".join(lines)


def _run_config(root: str, overrides: Sequence[str], args):
    """The run config whose data settings the check uses (``data=folder`` unless an experiment or
    ``data=`` is named); the legacy flags map to their ``data.*`` keys."""
    from medsora.config import compose

    extra = list(overrides)
    if not any(o.startswith(("experiment=", "data=")) for o in extra):
        extra.insert(0, "data=folder")
    for flag, key in ((args.manifest, "manifest"), (args.nifti_axis, "nifti_axis"), (args.nifti_slice, "nifti_slice")):
        if flag is not None:
            extra.append(f"data.{key}={flag}")
    return compose(None, [*extra, f"data.root={root}"])


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m medsora.data", description="Data set tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="decode every video of a data set and print a summary under a run's "
                                              "clip settings; exit 1 when any file is unreadable or refused")
    check.add_argument("root", help="data folder, a manifest (.csv/.jsonl) inside one, or 'demo'")
    check.add_argument("overrides", nargs="*", help="experiment=NAME, data=NAME and key=value overrides (as for "
                                                    "medsora.fit) giving the clip settings; default data=folder")
    check.add_argument("--manifest", default=None, help="manifest relative to ROOT (data.manifest; default: "
                                                        "manifest.jsonl/.csv if present, else a scan of the folder)")
    check.add_argument("--nifti-axis", type=int, default=None, help="slice axis for NIfTI volumes (data.nifti_axis)")
    check.add_argument("--nifti-slice", type=int, default=None, help="slice shown for 4-D NIfTI (data.nifti_slice)")
    check.add_argument("--no-progress", action="store_true", help="no progress bar")
    from medsora.config import add_config_dir_argument, use_config_dirs

    add_config_dir_argument(check)
    args, unknown = parser.parse_known_args(argv)  # key=value may follow the options too
    stray = [u for u in unknown if u.startswith("-") or "=" not in u]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    args.overrides = [*args.overrides, *unknown]

    from medsora.config import ConfigError
    from medsora.data.dataset import ClipSettings
    from medsora.data.datamodule import split_entries
    from medsora.data.summary import summarise_clips

    root = Path(args.root).expanduser()
    manifest = args.manifest
    if args.root != "demo" and root.is_file() and root.suffix.lower() in (".csv", ".jsonl", ".ndjson"):
        root, args.manifest = root.parent, root.name
    try:
        use_config_dirs(args.config_dir)
        cfg = _run_config("demo" if args.root == "demo" else str(root), args.overrides, args)
        settings = ClipSettings.from_config(cfg.data)
    except (ConfigError, ValueError) as err:
        print(f"medsora.data: error: {err}", file=sys.stderr)
        return 2
    if args.root == "demo":
        from medsora.data.demo import ensure_demo

        root = ensure_demo(seed=int(cfg.data.demo_seed), num_clips=int(cfg.data.demo_clips))
    manifest = cfg.data.manifest
    notes: list[str] = []
    try:
        entries = load_entries(root, manifest, notes=notes)
    except ManifestError as err:
        print(f"medsora.data: error: {err}", file=sys.stderr)
        return 2
    report = check_entries(root, entries, settings.nifti_axis, settings.nifti_slice, progress=not args.no_progress,
                           short_side=settings.size, max_pixels=settings.max_frame_pixels)
    report.layout = notes
    train, val = split_entries(entries, float(cfg.data.val_fraction))
    test = [i for i, e in enumerate(entries) if e.split == "test"]
    report.clips = summarise_clips(report.frame_counts, {"train": train, "val": val, "test": test}, settings)
    print(format_report(report))
    return 1 if report.unreadable or report.too_large else 0
