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

from medsora.data.sources.formats import VIDEO_SUFFIXES, is_dicom_file, is_image_file, is_nifti_file

__all__ = [
    "VideoEntry",
    "ManifestError",
    "MANIFEST_NAMES",
    "default_caption",
    "find_manifest",
    "read_manifest",
    "scan_folder",
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
    """Every source under ``root`` (hidden files and folders skipped), in path order.

    * video files and NIfTI files: one video each;
    * a folder holding images: one frame-sequence video;
    * multi-frame DICOM files: one video each; the single-frame DICOM files of a
      folder together: one series video (the folder). A DICOM file whose header
      does not parse belongs to the folder's series when there is one (the series
      is then reported unreadable), else it is a (bad) video of its own.
    Modality = name of the folder holding the video (for folder videos: its parent).
    """
    root = Path(root)
    entries: list[VideoEntry] = []

    def add(target: Path) -> None:
        modality = target.parent.name
        key = Path(os.path.relpath(target, root)).as_posix()
        entries.append(VideoEntry(target, key, default_caption(modality), modality))

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        folder = Path(dirpath)
        files = [folder / f for f in sorted(filenames) if not f.startswith(".") and f not in MANIFEST_NAMES]
        if folder != root and any(is_image_file(f) for f in files):
            add(folder)
        dicoms = {f: _frame_count(f) for f in files if is_dicom_file(f)}
        # Single-frame DICOMs at the root have no series folder: each is a 1-frame video there.
        series = folder != root and any(count == 1 for count in dicoms.values())
        for file in files:
            if file.suffix.lower() in VIDEO_SUFFIXES or is_nifti_file(file):
                add(file)
            elif file in dicoms and (dicoms[file] > 1 or not series):
                add(file)
        if series:
            add(folder)
    return entries


def load_entries(root: Path, manifest: Optional[str] = None) -> list[VideoEntry]:
    """The videos of a data set: from ``manifest`` (relative to root), an auto-found manifest, or a scan.

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
    entries = read_manifest(path, root) if path else scan_folder(root)
    if not entries:
        raise ManifestError(
            f"data.root: no videos under {root} (video files {' '.join(sorted(VIDEO_SUFFIXES))}, frame folders, "
            "DICOM, NIfTI) and no manifest.jsonl/manifest.csv"
        )
    return entries
