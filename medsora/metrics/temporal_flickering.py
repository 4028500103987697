"""VBench temporal flickering: how little consecutive frames differ, on native frames.

Per video: the mean absolute difference between consecutive uint8 frames (all
pixels and channels, in [0, 255]), averaged over frame pairs; score
``(255 - mean) / 255``; the set's score is the mean over videos. A static video
scores exactly 1. VBench applies this to its static-prompt videos only; here it is
computed on every video, so camera or tissue motion lowers it too.
"""
from __future__ import annotations

from torch import Tensor

from medsora.metrics.base import PerVideoMetric, VideoScore

__all__ = ["TemporalFlickering", "flicker_score"]


def flicker_score(video: Tensor) -> float:
    """VBench temporal-flickering score of a uint8 video T×H×W×3 (T >= 2)."""
    if video.shape[0] < 2:
        raise ValueError(f"temporal flickering needs at least 2 frames, got {video.shape[0]}")
    x = video.float()
    mae = (x[1:] - x[:-1]).abs().flatten(1).mean(1).mean()
    return float((255.0 - mae) / 255.0)


class TemporalFlickering(PerVideoMetric):
    name = "temporal_flickering"
    higher_is_better = True
    protocol = "VBench: all native frames, (255 - mean |frame_{i+1} - frame_i|) / 255, mean over videos"

    def score(self, video: Tensor, meta: dict) -> VideoScore:
        if video.shape[0] < 2:
            return VideoScore(0.0, 0)
        return VideoScore(flicker_score(video), 1)
