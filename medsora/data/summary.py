"""What a run's clip settings make of a data set: short videos, padding, clips per split.

``python -m medsora.data check`` prints this summary and training logs it once at start-up
(with a warning when videos are padded), so both show the same figures.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from medsora.data.clips import clip_span

__all__ = ["ClipSummary", "summarise_clips"]


@dataclass
class ClipSummary:
    """Counts under one set of clip settings.

    Attributes:
        span: source frames one clip covers (at ``data.frame_stride``; stride 1 with the adaptive
            interval, the shortest a clip can be).
        num_frames: frames per clip.
        videos: videos with a known length; unknown: videos whose length is not known (unreadable
            or not probed).
        short: videos shorter than ``span`` (padded by repeating their last frame, or skipped
            with ``data.short_videos=skip``); repeated: (fewest, most) repeated frames per clip
            among them.
        split_videos, split_clips: per split ("train", "val", "test"), videos and clips.
    """

    span: int
    num_frames: int
    short_videos: str = "pad"
    videos: int = 0
    unknown: int = 0
    short: int = 0
    repeated: tuple[int, int] = (0, 0)
    split_videos: dict = field(default_factory=dict)
    split_clips: dict = field(default_factory=dict)

    def lines(self) -> list[str]:
        """The summary as plain lines (no markup)."""
        splits = ", ".join(f"{name} {self.split_videos.get(name, 0)} videos / {self.split_clips.get(name, 0)} clips"
                           for name in ("train", "val", "test") if name in self.split_videos)
        out = [f"clips of {self.num_frames} frames span {self.span} source frames; {splits}"]
        if self.short:
            action = "skipped (data.short_videos=skip)" if self.short_videos == "skip" else \
                f"padded by repeating their last frame ({self._repeated()} of {self.num_frames} frames repeated)"
            out.append(f"{self.short} of {self.videos} videos are shorter than a clip ({self.span} frames): {action}; "
                       "lower data.num_frames or data.frame_stride to use more real frames")
        if self.unknown:
            out.append(f"{self.unknown} videos of unknown length (unreadable or not probed) count as 1 clip each")
        return out

    def _repeated(self) -> str:
        low, high = self.repeated
        return str(low) if low == high else f"{low}–{high}"


def summarise_clips(lengths: Sequence[int], splits: Mapping[str, Sequence[int]], settings) -> ClipSummary:
    """Summarise a data set under ``settings`` (:class:`medsora.data.dataset.ClipSettings`).

    Args:
        lengths: frames per video (≤ 0: unknown).
        splits: video indices per split.
    """
    stride = 1 if settings.adaptive_interval else settings.frame_stride
    summary = ClipSummary(span=clip_span(settings.num_frames, stride), num_frames=settings.num_frames,
                          short_videos=settings.short_videos)
    repeats = []
    for length in lengths:
        if length <= 0:
            summary.unknown += 1
            continue
        summary.videos += 1
        if length < summary.span:
            summary.short += 1
            distinct = (length - 1) // stride + 1
            repeats.append(settings.num_frames - distinct)
    if repeats:
        summary.repeated = (min(repeats), max(repeats))
    skip = settings.short_videos == "skip"
    for name, indices in splits.items():
        summary.split_videos[name] = len(indices)
        summary.split_clips[name] = sum(
            0 if skip and 0 < lengths[i] < summary.span else settings.clips_of(int(lengths[i])) for i in indices)
    return summary
