"""Which videos a data set holds: a manifest (CSV/JSONL) or a scan of the data folder.

A manifest has one row per video with a ``path`` (relative to the data root) and
optional ``caption``, ``modality`` and ``split`` columns; any other column is kept
as metadata. Without a manifest every source under the root is a video and its
modality is the name of the folder holding it.
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pydicom
from pydicom.errors import InvalidDicomError

from medsora.data.sources.formats import VIDEO_SUFFIXES, is_dicom_file, is_nifti_file, is_tiff_stack
from medsora.data.sources.frames import is_frame_image

__all__ = [
    "VideoEntry",
    "ManifestError",
    "MANIFEST_NAMES",
    "default_caption",
    "find_manifest",
    "read_manifest",
    "scan_folder",
    "scan_layout",
    "load_entries",
]

MANIFEST_NAMES = ("manifest.jsonl", "manifest.csv")
_SPLITS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
           "dev": "val", "test": "test"}
_KNOWN = ("path", "caption", "modality", "split")


class ManifestError(ValueError):
    """A manifest or data folder problem a user can fix (names the file, the line and the fix)."""


@dataclass(frozen=True)
class VideoEntry:
    """One video of a data set.

    Attributes:
        path: absolute location (file or folder).
        key: location relative to the data root, POSIX style; what batches carry as ``path``.
        caption: text prompt (Bora stage-1 style "This is a … video." when the manifest has none).
        modality: e.g. "endoscopy".
        split: "train", "val", "test" or None (then assigned by a hash of ``key``).
        meta: extra manifest columns.
    """

    path: Path
    key: str
    caption: str
    modality: str
    split: Optional[str] = None
    meta: dict = field(default_factory=dict, compare=False)


def default_caption(modality: str) -> str:
    """Bora's modality-alignment caption, used when a video has no caption of its own."""
    return f"This is a {modality} video."


def find_manifest(root: Path) -> Optional[Path]:
    """``manifest.jsonl`` or ``manifest.csv`` at the top of ``root``, if present."""
    for name in MANIFEST_NAMES:
        if (root / name).is_file():
            return root / name
    return None


def _inside(root: Path, raw: str) -> Optional[Path]:
    """``root/raw`` normalised, or None when it escapes ``root``.

    The check is lexical (``..`` and absolute paths), not through symlinks, so a
    data root made of links to other disks still works.
    """
    base = os.path.normpath(os.path.abspath(root))
    target = os.path.normpath(os.path.join(base, os.path.expanduser(raw)))
    if os.path.commonpath([base, target]) != base:
        return None
    return Path(target)


def _entry(root: Path, row: dict, where: str) -> VideoEntry:
    raw = row.get("path")
    if raw is None or str(raw).strip() == "":
        raise ManifestError(f"{where}: empty 'path'; every row must name a video file or folder relative to the data root")
    raw = str(raw).strip()
    target = _inside(root, raw)
    if target is None:
        raise ManifestError(
            f"{where}: path '{raw}' escapes the data root {root}; manifest paths must lie inside data.root "
            "(move the files under it or point data.root at a common parent)"
        )
    modality = str(row.get("modality") or "").strip() or target.parent.name
    caption = str(row.get("caption") or "").strip() or default_caption(modality)
    split_raw = str(row.get("split") or "").strip().lower()
    if split_raw and split_raw not in _SPLITS:
        raise ManifestError(f"{where}: split '{row.get('split')}' is not one of train, val, test (or empty)")
    meta = {k: v for k, v in row.items() if k not in _KNOWN}
    key = Path(os.path.relpath(target, os.path.abspath(root))).as_posix()
    return VideoEntry(target, key, caption, modality, _SPLITS.get(split_raw), meta)


def read_manifest(manifest: Path, root: Path) -> list[VideoEntry]:
    """Entries of a CSV or JSONL manifest; paths are relative to ``root``.

    Raises:
        ManifestError: unknown file type, malformed line, missing ``path`` column,
            a path outside ``root``, an unknown split, or no rows.
    """
    suffix = manifest.suffix.lower()
    entries: list[VideoEntry] = []
    if suffix == ".csv":
        with open(manifest, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            if "path" not in columns:
                raise ManifestError(f"{manifest}: no 'path' column (columns: {', '.join(columns) or 'none'}); "
                                    "the header must name path[,caption,modality,split,...]")
            reader.fieldnames = columns
            for line, row in enumerate(reader, start=2):
                entries.append(_entry(root, row, f"{manifest}:{line}"))
    elif suffix in (".jsonl", ".ndjson"):
        with open(manifest, encoding="utf-8") as handle:
            for line, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    row = json.loads(text)
                except json.JSONDecodeError as err:
                    raise ManifestError(f"{manifest}:{line}: not valid JSON ({err.msg}); one JSON object per line") from None
                if not isinstance(row, dict):
                    raise ManifestError(f"{manifest}:{line}: expected a JSON object like "
                                        '{"path": "a.mp4", "caption": "...", "modality": "...", "split": "train"}')
                entries.append(_entry(root, row, f"{manifest}:{line}"))
    else:
        raise ManifestError(f"{manifest}: manifest must be .csv or .jsonl (data.manifest)")
    if not entries:
        raise ManifestError(f"{manifest}: no rows")
    return entries


def _frame_count(path: Path) -> int:
    """NumberOfFrames from the header (1 when absent), or 0 when the header does not parse."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["NumberOfFrames"])
        return int(ds.get("NumberOfFrames", 1) or 1)
    except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, KeyError, AttributeError):
        return 0


def scan_folder(root: Path) -> list[VideoEntry]:
    """Every source under ``root``: the entries of :func:`scan_layout`."""
    return scan_layout(root)[0]


def scan_layout(root: Path) -> tuple[list[VideoEntry], list[str]]:
    """Every source under ``root`` (hidden files and folders skipped), in path order, and the layout notes.

    * video files, NIfTI files and multi-page TIFFs: one video each;
    * a folder holding single-frame images: one frame-sequence video;
    * multi-frame DICOM files: one video each; the single-frame DICOM files of a folder
      without sub-folders together: one series video (the folder). A DICOM file whose header
      does not parse belongs to the folder's series when there is one (the series is then
      reported unreadable), else it is a (bad) video of its own.

    Symbolic links are followed, wherever they point (a data root may be made of links to other
    disks), but each real file and folder is taken once: a second link to the same place, or a
    link back to an enclosing folder (``loop -> ..``), is skipped and noted.
    Modality = name of the folder holding the video (for folder videos: its parent).

    Returns:
        (entries, notes): notes are one line per ambiguous or skipped part of the layout, naming
        the folder and what was done (``python -m medsora.data check`` prints them).
    """
    root = Path(root)
    entries: list[VideoEntry] = []
    notes: list[str] = []
    seen: set[str] = set()  # real paths of folders walked and files taken

    def rel(path: Path) -> str:
        return Path(os.path.relpath(path, root)).as_posix()

    def add(target: Path) -> None:
        modality = target.parent.name
        entries.append(VideoEntry(target, rel(target), default_caption(modality), modality))

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        folder = Path(dirpath)
        seen.add(os.path.realpath(folder))
        kept_dirs = []
        # real folders before links, so that a folder reached both ways keeps its own name
        for name in sorted((d for d in dirnames if not d.startswith(".")), key=lambda d: ((folder / d).is_symlink(), d)):
            real = os.path.realpath(folder / name)
            if real in seen:
                notes.append(f"{rel(folder / name)}: a link to {real}, a folder already scanned (a loop or a "
                             "second link): skipped")
                continue
            seen.add(real)
            kept_dirs.append(name)
        dirnames[:] = sorted(kept_dirs)
        files = []
        for name in sorted(filenames, key=lambda f: ((folder / f).is_symlink(), f)):
            if name.startswith(".") or name in MANIFEST_NAMES:
                continue
            real = os.path.realpath(folder / name)
            if real in seen:
                notes.append(f"{rel(folder / name)}: another link to {real}, already taken: skipped")
                continue
            seen.add(real)
            files.append(folder / name)
        files.sort()
        stacks = {f for f in files if is_tiff_stack(f)}
        frames = folder != root and any(is_frame_image(f) for f in files if f not in stacks)
        if frames:
            add(folder)
            if kept_dirs:
                notes.append(f"{rel(folder)}: frame images beside sub-folders: the images are one video "
                             f"(modality '{folder.parent.name}'), the sub-folders' videos have modality '{folder.name}'")
        dicoms = {f: _frame_count(f) for f in files if is_dicom_file(f)}
        singles = [f for f, count in dicoms.items() if count == 1]
        # Single-frame DICOMs at the root have no series folder: each is a 1-frame video there.
        series = folder != root and bool(singles) and not kept_dirs
        if folder != root and singles and kept_dirs:
            notes.append(f"{rel(folder)}: {len(singles)} single-frame DICOM file(s) beside sub-folders "
                         f"({', '.join(f.name for f in singles[:3])}{' …' if len(singles) > 3 else ''}): left out, "
                         "not made a series; move a series into a folder of its own")
        for file in files:
            if file.suffix.lower() in VIDEO_SUFFIXES or is_nifti_file(file) or file in stacks:
                add(file)
            elif file in dicoms:
                left_out = dicoms[file] == 1 and folder != root and kept_dirs
                if dicoms[file] > 1 or not (series or left_out):
                    add(file)
        if series:
            add(folder)
    return entries, notes


def load_entries(root: Path, manifest: Optional[str] = None, notes: Optional[list] = None) -> list[VideoEntry]:
    """The videos of a data set: from ``manifest`` (relative to root), an auto-found manifest, or a scan.

    ``notes``, when given, receives the scan's layout notes (see :func:`scan_layout`).

    Raises:
        ManifestError: root missing, manifest missing/invalid, or no videos found.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ManifestError(f"data.root: {root} is not a folder (set data.root to a data folder or 'demo')")
    if manifest:
        path = Path(manifest).expanduser()
        path = path if path.is_absolute() else root / path
        if not path.is_file():
            raise ManifestError(f"data.manifest: {path} not found (a .csv or .jsonl path relative to data.root {root})")
    else:
        path = find_manifest(root)
    if path:
        entries = read_manifest(path, root)
    else:
        entries, found = scan_layout(root)
        if notes is not None:
            notes.extend(found)
    if not entries:
        raise ManifestError(
            f"data.root: no videos under {root} (video files {' '.join(sorted(VIDEO_SUFFIXES))}, frame folders, "
            "DICOM, NIfTI) and no manifest.jsonl/manifest.csv"
        )
    return entries
