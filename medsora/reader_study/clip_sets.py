"""The real and generated clips a study draws from, each with its modality.

A set is a folder (searched recursively) or a ``manifest.jsonl``, listed as
``python -m medsora.evaluate`` lists them (one file per name: ``sample_000.mp4`` wins over its
``.gif``). A clip's modality is, first found:

1. the ``modality`` of its row in the set's manifest (``manifest.jsonl``/``.csv`` in the folder,
   or the ``.jsonl`` given);
2. its label in ``samples.json`` written by ``python -m medsora.sample --modality …``;
3. the first folder under the set's root (``real/endoscopy/a.mp4`` → ``endoscopy``);
4. ``all`` for a clip at the root.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from medsora.data.manifest import ManifestError, find_manifest, read_manifest
from medsora.metrics.video_sets import list_videos

__all__ = ["Clip", "list_clips"]


@dataclass(frozen=True)
class Clip:
    path: Path
    key: str        # path relative to the set's root, for reports
    modality: str
    origin: str     # "real" or "generated"


def _manifest_modalities(source: Path, root: Path) -> dict[str, str]:
    manifest = source if source.is_file() else find_manifest(root)
    if manifest is None:
        return {}
    try:
        entries = read_manifest(manifest, root)
    except ManifestError as err:
        raise ValueError(str(err)) from None
    return {os.path.normpath(e.path): e.modality for e in entries}


def _sample_labels(root: Path) -> dict[str, str]:
    record = root / "samples.json"
    if not record.is_file():
        return {}
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
        files, labels = list(data.get("files", [])), list(data.get("labels", []))
    except (json.JSONDecodeError, AttributeError, TypeError):
        return {}
    return {str(f): str(l) for f, l in zip(files, labels) if l}


def list_clips(source: str | Path, origin: str) -> list[Clip]:
    """Every clip of the set at ``source`` (folder or ``.jsonl``), sorted by key.

    Raises:
        FileNotFoundError, ValueError: no such folder/manifest, a bad manifest, or no videos.
    """
    source = Path(source).expanduser()
    root, videos = list_videos(source)
    by_manifest = _manifest_modalities(source, root)
    by_sample = _sample_labels(root)
    clips = []
    for video in videos:
        rel = Path(os.path.relpath(video, root))
        modality = by_manifest.get(os.path.normpath(os.path.abspath(video))) or by_sample.get(video.stem)
        if not modality:
            modality = rel.parts[0] if len(rel.parts) > 1 else "all"
        clips.append(Clip(video, rel.as_posix(), modality, origin))
    return clips
