"""Labelled clips for the utility test: generated clips labelled by their condition, real clips by the manifest.

Every clip becomes the same small input, ``3×frames×size×size`` in [-1, 1]: ``frames``
frames evenly spaced over the clip (a generated video is one clip; a real video gives up
to ``windows_per_video`` windows of ``span`` frames, evenly spaced over it), the short
side resized to ``size`` (antialiased) and the centre crop — the classifier sees the
content and motion of a clip, not its resolution or length.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from medsora.data.sources import UnreadableVideo, read_video
from medsora.data.transforms import preprocess_frames

__all__ = ["ClipSet", "ClipSpec", "generated_clips", "real_clips"]


@dataclasses.dataclass
class ClipSpec:
    frames: int = 8
    size: int = 32
    span: int = 17  # source frames a real window covers (a generated clip's length)
    windows_per_video: int = 4


@dataclasses.dataclass
class ClipSet:
    """Clips N×3×F×S×S, their labels (str or float) and the video each came from."""

    clips: torch.Tensor
    labels: list
    videos: list[str]
    unreadable: list[str]

    def __len__(self) -> int:
        return len(self.labels)


def _to_input(frames: np.ndarray, spec: ClipSpec) -> torch.Tensor:
    idx = np.linspace(0, frames.shape[0] - 1, spec.frames).round().astype(int)
    return preprocess_frames(frames[idx], spec.size)


def _windows(num_frames: int, spec: ClipSpec) -> list[range]:
    span = min(spec.span, num_frames)
    starts = np.unique(np.linspace(0, num_frames - span, spec.windows_per_video).round().astype(int))
    return [range(s, s + span) for s in starts]


def _collect(items, spec: ClipSpec, windows: bool, desc: str, progress: bool) -> ClipSet:
    clips, labels, videos, bad = [], [], [], []
    for path, label in tqdm(items, desc=desc, disable=not progress, file=sys.stderr):
        try:
            frames, _ = read_video(path)
        except UnreadableVideo as err:
            bad.append(str(err))
            continue
        for window in (_windows(frames.shape[0], spec) if windows else [range(frames.shape[0])]):
            clips.append(_to_input(frames[window.start:window.stop], spec))
            labels.append(label)
            videos.append(str(path))
    if not clips:
        raise ValueError(f"{desc}: no readable clip")
    return ClipSet(torch.stack(clips), labels, videos, bad)


def _sample_labels(folder: Path, label: str) -> dict[str, object]:
    """``{file stem: label}`` from the ``samples.json`` that ``python -m medsora.sample`` writes."""
    record_path = folder / "samples.json"
    if not record_path.is_file():
        raise ValueError(f"--fake {folder}: no samples.json (written by python -m medsora.sample) to read the "
                         f"'{label}' each sample was generated with")
    record = json.loads(record_path.read_text(encoding="utf-8"))
    files = record.get("files") or []
    if label == "modality":
        values = record.get("labels") or []
    elif isinstance(record.get(label), list):
        values = record[label]
    else:
        values = [a.get(label) if isinstance(a, dict) else None for a in record.get("attributes") or []]
    if len(values) != len(files) or not files or any(v in (None, "") for v in values):
        raise ValueError(f"{record_path}: no '{label}' for every sample (samples were not conditioned on it, or the "
                         f"file predates labels); found {len(values)} values for {len(files)} files")
    return dict(zip(files, values))


def generated_clips(folder: str | Path, label: str, spec: ClipSpec, progress: bool = True) -> ClipSet:
    """The generated videos of ``folder`` (one clip each), labelled from its ``samples.json``."""
    from medsora.metrics.video_sets import list_videos

    folder = Path(folder)
    labels = _sample_labels(folder, label)
    _, videos = list_videos(folder)
    items = [(v, labels[v.stem]) for v in videos if v.stem in labels]
    return _collect(items, spec, windows=False, desc="generated clips", progress=progress)


def real_clips(root: str | Path, label: str, spec: ClipSpec, progress: bool = True) -> tuple[ClipSet, ClipSet]:
    """``(train, held_out)`` clips of a data folder: the manifest's split (val/test held out), else the data
    pipeline's hash split; ``label`` is ``modality`` or a manifest column."""
    from medsora.data.datamodule import hash_split
    from medsora.data.manifest import load_entries

    entries = load_entries(Path(root))
    split: dict[str, list] = {"train": [], "held_out": []}
    for e in entries:
        value = e.modality if label == "modality" else e.meta.get(label)
        if value is None or value == "":
            raise ValueError(f"--real {root}: video {e.key} has no '{label}' (a manifest column or 'modality')")
        side = e.split or hash_split(e.key, 0.1)
        split["train" if side == "train" else "held_out"].append((e.path, value))
    if not split["held_out"]:
        raise ValueError(f"--real {root}: no held-out videos (manifest split val or test) to test on")
    return (_collect(split["train"], spec, True, "real train clips", progress),
            _collect(split["held_out"], spec, True, "real held-out clips", progress))
