"""Clips from decoded videos: Bora temporal sampling + spatial preprocessing, bad files skipped."""
from __future__ import annotations

import contextlib
import json
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from medsora.data.clips import adaptive_stride, clip_count, clip_indices, clip_span, clip_start, parse_clips_per_video
from medsora.data.sources import UnreadableVideo, read_video
from medsora.data.table import DataError, SourceTable
from medsora.data.transforms import crop_square, preprocess_frames

__all__ = ["ClipSettings", "VideoClipDataset"]


@dataclass(frozen=True)
class ClipSettings:
    """The ``data:`` keys a clip dataset needs (see medsora/data/schema.py for their meaning)."""

    size: int = 64
    num_frames: int = 17
    frame_stride: int = 1
    adaptive_interval: bool = False
    threshold_k: float = 0.02
    max_stride: int = 8
    short_videos: str = "pad"
    random_crop: bool = False
    train_crop: int = 0  # 0 = off; else training clips are random train_crop² windows of the size² clip
    nifti_axis: int = 2
    nifti_slice: int | None = None
    percentiles: tuple[float, float] = (0.5, 99.5)
    clips_per_video: int | None = 1  # None: all windows
    max_frame_pixels: int | None = None

    @classmethod
    def from_config(cls, cfg) -> "ClipSettings":
        return cls(
            size=int(cfg.size), num_frames=int(cfg.num_frames), frame_stride=int(cfg.frame_stride),
            adaptive_interval=bool(cfg.adaptive_interval), threshold_k=float(cfg.threshold_k),
            max_stride=int(cfg.max_stride), short_videos=str(cfg.short_videos), random_crop=cfg.crop == "random",
            train_crop=int(cfg.train_crop),
            nifti_axis=int(cfg.nifti_axis), nifti_slice=cfg.nifti_slice,
            percentiles=(float(cfg.intensity_percentiles[0]), float(cfg.intensity_percentiles[1])),
            clips_per_video=parse_clips_per_video(cfg.clips_per_video),
            max_frame_pixels=int(cfg.max_frame_pixels) if cfg.max_frame_pixels else None,
        )

    @property
    def window(self) -> int:
        """Source frames a clip spans for counting clips: at the fixed stride, or the largest
        adaptive one (so that counted windows never overlap whatever stride is picked)."""
        return clip_span(self.num_frames, self.max_stride if self.adaptive_interval else self.frame_stride)

    def clips_of(self, length: int) -> int:
        """Clips a video of ``length`` frames gives (1 when the length is unknown)."""
        if self.clips_per_video == 1 or length <= 0:
            return 1
        return clip_count(length, self.window, self.clips_per_video)


@contextlib.contextmanager
def _one_thread_in_main_process():
    """Per-clip tensors are small: intra-op threads cost more than they gain, and on a busy machine
    they spin against each other (measured 4× slower with 2 threads, benchmarks/data.py). DataLoader
    workers already run single-threaded; without workers, loading borrows the main process."""
    if get_worker_info() is not None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class VideoClipDataset(Dataset):
    """``settings.clips_per_video`` clips per video of a split (see :meth:`ClipSettings.clips_of`).

    Items: {"video": 3×F×size×size float32 in [-1, 1], "caption": str,
    "modality": str, "path": str (relative to the data root), "clip": int (which clip of
    the video), "fps": float (the clip's frame rate: the source's divided by the stride; 0 when
    the source has none), "attributes": str (the manifest's extra columns as a JSON object, read
    by ``cond.attributes``)}.

    Training draws a random temporal offset within the clip's stratum of the video (and a
    random crop when ``settings.random_crop``, and a random ``settings.train_crop`` window) from torch's RNG, seeded per item by
    :class:`medsora.data.order.SeededItems`; validation and encoding take evenly spaced fixed
    offsets (the central one for one clip per video) and the centre crop. An unreadable
    video, or a too-short one under ``short_videos: skip``, is recorded in the
    shared :class:`SourceTable` and replaced by the next clip of the split, so
    batches keep their size. Frames are scaled to ``size`` as they are decoded.
    """

    def __init__(self, table: SourceTable, indices: Sequence[int], settings: ClipSettings, train: bool):
        self.table = table
        self.indices = list(indices)
        self.settings = settings
        self.train = train
        # (video index, clip, clips of the video); needs the lengths (table.probe) when clips_per_video != 1
        self.slots = [(index, k, n) for index in self.indices
                      for n in (settings.clips_of(int(table.length[index])),) for k in range(n)]

    def __len__(self) -> int:
        return len(self.slots)

    def clip_fps(self) -> float | None:
        """The split's clip frame rate: the median source rate (from the probe) over the stride; None if unknown."""
        rates = [float(self.table.fps[i]) for i in self.indices if float(self.table.fps[i]) > 0]
        stride = 1 if self.settings.adaptive_interval else self.settings.frame_stride
        return float(np.median(rates)) / stride if rates else None

    def _read(self, index: int, frames: Sequence[int] | None) -> tuple[np.ndarray, dict]:
        s = self.settings
        return read_video(self.table.entries[index].path, indices=frames, axis=s.nifti_axis,
                          slice_index=s.nifti_slice, percentiles=s.percentiles, short_side=s.size,
                          max_pixels=s.max_frame_pixels)

    def _stride(self, index: int, length: int, decoded: np.ndarray | None) -> int:
        s = self.settings
        if not s.adaptive_interval:
            return s.frame_stride
        cached = int(self.table.stride[index])
        if cached > 0:
            return cached
        window = min(length, clip_span(s.num_frames, s.max_stride))
        frames = decoded[:window] if decoded is not None else self._read(index, list(range(window)))[0]
        # Differences measured at the training resolution, grey, in [0, 1].
        grey = (preprocess_frames(frames, s.size).mean(0) + 1.0) / 2.0  # T×H×W
        stride = adaptive_stride(grey, s.num_frames, s.threshold_k, s.max_stride)
        self.table.stride[index] = stride
        return stride

    def _clip(self, index: int, clip: int, count: int) -> dict | None:
        s, table = self.settings, self.table
        entry = table.entries[index]
        length = int(table.length[index])
        decoded, meta = None, None
        if length <= 0:  # the header did not say: decode once, remember the length
            decoded, meta = self._read(index, None)
            length = len(decoded)
            table.length[index] = length
        stride = self._stride(index, length, decoded)
        span = clip_span(s.num_frames, stride)
        short = length < span
        if short and s.short_videos == "skip":
            if int(table.state[index]) != table.SHORT_SKIPPED:
                table.state[index] = table.SHORT_SKIPPED
                warnings.warn(f"skipping {entry.path}: {length} frames, a clip needs {span} (data.short_videos=skip)",
                              stacklevel=2)
            return None
        start = clip_start(length, span, self.train, clip=clip, count=count)
        frames = clip_indices(length, s.num_frames, stride, start)
        if decoded is not None:
            pixels = decoded[frames]
        else:
            pixels, meta = self._read(index, frames)
        video = preprocess_frames(pixels, s.size, random_crop=s.random_crop and self.train)
        if self.train and s.train_crop:
            video = crop_square(video, s.train_crop, random=True)
        table.state[index] = table.SHORT_PADDED if short else table.OK
        fps = float(meta.get("fps") or 0.0) / stride
        return {"video": video, "caption": entry.caption, "modality": entry.modality, "path": entry.key,
                "clip": clip, "fps": fps, "attributes": json.dumps(entry.meta, sort_keys=True)}

    def __getitem__(self, position: int) -> dict:
        with _one_thread_in_main_process():
            return self._first_usable(position)

    def _first_usable(self, position: int) -> dict:
        skip = (SourceTable.UNREADABLE, SourceTable.SHORT_SKIPPED)
        for attempt in range(len(self.slots)):
            index, clip, count = self.slots[(position + attempt) % len(self.slots)]
            if int(self.table.state[index]) in skip:
                continue
            try:
                item = self._clip(index, clip, count)
            except UnreadableVideo as err:
                self.table.mark_unreadable(index, err.reason)
                continue
            if item is not None:
                return item
        raise DataError(f"no usable video left in this split of {len(self.indices)} videos:\n{self.table.bad_report()}")
