"""Temporal clip sampling as in Bora: fixed or adaptive frame interval, padding of short videos.

Bora samples clips so that they carry visible motion: starting from the
smallest frame interval, the interval grows until the mean absolute difference
between consecutive sampled frames exceeds a threshold K. Here the rule picks
the smallest stride in ``1..max_stride`` whose clip-length window has a mean
|Δframe| above K (intensities in [0, 1]); when no stride reaches K, the largest
stride that fits is used (the most motion the video offers).
"""
from __future__ import annotations

import torch

__all__ = ["clip_span", "mean_abs_difference", "adaptive_stride", "parse_clips_per_video", "clip_count", "clip_start",
           "clip_indices"]


def clip_span(num_frames: int, stride: int) -> int:
    """Source frames a clip of ``num_frames`` at ``stride`` covers: (num_frames-1)·stride + 1."""
    return (num_frames - 1) * stride + 1


def mean_abs_difference(frames: torch.Tensor) -> float:
    """Mean |x[t+1] - x[t]| over a clip.

    Args:
        frames: T×… float, intensities in [0, 1]; T ≥ 2.
    """
    return float((frames[1:] - frames[:-1]).abs().mean())


def adaptive_stride(frames: torch.Tensor, num_frames: int, threshold: float, max_stride: int) -> int:
    """Bora's adaptive interval on a window of a video.

    Args:
        frames: L×… float in [0, 1], the first L frames from the clip start (L
            ≥ 1; up to ``clip_span(num_frames, max_stride)`` are used).
        num_frames: frames per clip.
        threshold: K, the mean absolute inter-frame difference to exceed.
        max_stride: the largest interval considered.
    Returns:
        The smallest stride s whose clip frames[0 : span(s) : s] has mean |Δ| > K;
        else the largest stride that fits in L frames (1 if none fits).
    """
    length = frames.shape[0]
    fitting = [s for s in range(1, max_stride + 1) if clip_span(num_frames, s) <= length]
    if not fitting or num_frames < 2:
        return 1
    for stride in fitting:
        if mean_abs_difference(frames[: clip_span(num_frames, stride) : stride]) > threshold:
            return stride
    return fitting[-1]


def parse_clips_per_video(value) -> int | None:
    """``data.clips_per_video``: a positive integer, or ``all`` (returned as None).

    Raises:
        ValueError: anything else, naming the key.
    """
    if isinstance(value, str) and value.strip().lower() == "all":
        return None
    try:
        count = int(value)
    except (TypeError, ValueError):
        count = 0
    if isinstance(value, bool) or count < 1 or str(count) != str(value).strip():
        raise ValueError(f"data.clips_per_video = {value!r}: use a whole number ≥ 1 or 'all'")
    return count


def clip_count(length: int, span: int, clips_per_video: int | None) -> int:
    """Clips a video of ``length`` frames gives: ``min(clips_per_video, windows)``.

    ``windows = max(1, length // span)`` non-overlapping windows of a clip's span fit in the
    video; ``clips_per_video=None`` ("all") takes them all. A video shorter than a clip gives one
    (padded) clip.
    """
    windows = max(1, int(length) // max(1, int(span)))
    return windows if clips_per_video is None else min(int(clips_per_video), windows)


def clip_start(length: int, span: int, train: bool, generator: torch.Generator | None = None,
               clip: int = 0, count: int = 1) -> int:
    """First source frame of clip ``clip`` of the ``count`` clips a video gives.

    The valid starts ``0 .. length - span`` are cut into ``count`` equal strata; training draws
    the start uniformly within the clip's stratum (so the clips of one epoch cover the video
    and differ between epochs), evaluation takes ``count`` evenly spaced starts (the central
    clip when ``count`` is 1). With ``count <= length // span`` the evaluation clips do not
    overlap.
    """
    room = max(length - span, 0)
    if not train or room == 0:
        if count <= 1:
            return room // 2
        return round(clip * room / (count - 1))
    low, high = clip * (room + 1) // count, (clip + 1) * (room + 1) // count - 1
    return int(torch.randint(low, max(low, high) + 1, (1,), generator=generator))


def clip_indices(length: int, num_frames: int, stride: int, start: int) -> list[int]:
    """Source frame indices of a clip; past the end of the video the last frame repeats (padding).

    Args:
        length: frames in the video (≥ 1).
        num_frames: frames per clip.
        stride: interval between sampled frames.
        start: first frame.
    """
    return [min(start + k * stride, length - 1) for k in range(num_frames)]
