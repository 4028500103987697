"""The real and generated sets handed to ``python -m medsora.evaluate``: folders or manifests.

A set is either a folder, searched recursively for videos as training scans a data folder
(:func:`medsora.data.manifest.scan_layout`: video files, multi-page TIFFs, DICOM and NIfTI
files, DICOM series and frame folders), or a ``manifest.jsonl`` whose lines hold ``path`` (relative to the
manifest's folder) and optionally ``split``. When one name exists with several video
suffixes (``medsora.sample`` writes ``x.mp4`` and ``x.gif``) only one is kept, mp4 first.
Videos are identified by their path relative to the set's root without suffix, which
is how a reconstruction is paired with its source.
"""
from __future__ import annotations

import json
import os
from pathlib import Path


__all__ = ["list_videos", "pair_videos", "video_key"]

_PREFERENCE = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v", ".gif")


def video_key(path: Path, root: Path) -> str:
    """Identifier of a video within its set: relative path without its (possibly double) suffix."""
    rel = path.relative_to(root).as_posix()
    for suffix in (".nii.gz", path.suffix):
        if suffix and rel.lower().endswith(suffix.lower()):
            return rel[: -len(suffix)]
    return rel


def _walk(root: Path) -> list[Path]:
    """The videos of a folder, by the data package's own scan (:func:`medsora.data.manifest.scan_layout`), so
    that evaluation sees the videos training and ``data check`` see: a multi-page TIFF is one video (not a
    frame of a frame folder), a folder of single-frame DICOMs is one series, a folder with frame images and
    sub-folders keeps the sub-folders' videos."""
    from medsora.data.manifest import scan_layout

    return [entry.path for entry in scan_layout(root)[0]]


def _read_manifest(path: Path, split: str | None) -> list[Path]:
    videos = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: not a JSON line ({err})") from err
        if "path" not in row:
            raise ValueError(f"{path}:{number}: a manifest line needs a 'path' key, got keys {sorted(row)}")
        if split is None or row.get("split") == split:
            videos.append(path.parent / row["path"])
    return videos


def list_videos(source: str | os.PathLike, split: str | None = None) -> tuple[Path, list[Path]]:
    """``(root, videos)`` of a folder or a ``.jsonl`` manifest (``split`` filters manifest rows)."""
    source = Path(source).expanduser()
    if source.is_file() and source.suffix == ".jsonl":
        root, videos = source.parent, _read_manifest(source, split)
    elif source.is_dir():
        root, videos = source, _walk(source)
    else:
        raise FileNotFoundError(f"{source}: expected a folder of videos or a manifest .jsonl file")
    chosen: dict[str, Path] = {}
    for video in videos:
        key = video_key(video, root)
        if key not in chosen or _rank(video) < _rank(chosen[key]):
            chosen[key] = video
    if not chosen:
        what = f"rows with split '{split}'" if split and source.is_file() else "videos"
        raise ValueError(f"{source}: no {what} found (videos: video files, frame folders, DICOM, NIfTI)")
    return root, sorted(chosen.values(), key=lambda p: video_key(p, root))


def _rank(path: Path) -> int:
    suffix = path.suffix.lower()
    return _PREFERENCE.index(suffix) if suffix in _PREFERENCE else len(_PREFERENCE)


def pair_videos(real_root: Path, real: list[Path], fake_root: Path, fake: list[Path]) -> list[tuple[Path, Path]]:
    """Pairs (source, reconstruction) with the same key; falls back to the file stem when every stem is unique."""
    def index(root, videos, by_stem):
        keys = [Path(video_key(v, root)).name if by_stem else video_key(v, root) for v in videos]
        return dict(zip(keys, videos)) if len(set(keys)) == len(keys) else None

    for by_stem in (False, True):
        r, f = index(real_root, real, by_stem), index(fake_root, fake, by_stem)
        if r is not None and f is not None and set(r) & set(f):
            return [(r[k], f[k]) for k in sorted(set(r) & set(f))]
    raise ValueError(
        f"no generated video in {fake_root} has the same relative name as a real video in {real_root}; reconstruction "
        "metrics compare x.mp4 with the source x.* (same relative path or same file name)"
    )
