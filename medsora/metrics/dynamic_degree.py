"""VBench dynamic degree: the share of videos that move, judged on RAFT optical flow.

Per video (VBench ``dynamic_degree.py``): frames are taken every ``round(fps / 8)``
frames (about 8 fps; fps from the file, 8 when unknown as for frame folders), at
native resolution; for each consecutive pair the score is the mean of the largest 5 %
of flow magnitudes; the video is dynamic when at least ``round(4 * n / 16)`` pairs
(n = sampled frames) score above ``max(1, 8 / fps) * 6 * min(H, W) / 256`` pixels.
One deviation: VBench's count can round to 0 for videos of two or three sampled
frames, which makes any such video "dynamic" unconditionally; we require at least one
pair above the threshold.
"""
from __future__ import annotations

import torch
from torch import Tensor

from medsora.metrics.base import PerVideoMetric, VideoScore
from medsora.metrics.flow_fields import FlowFn, video_flows

__all__ = ["DynamicDegree", "is_dynamic", "top_magnitude"]


def top_magnitude(flows: Tensor, share: float = 0.05) -> Tensor:
    """Mean of the largest ``share`` of flow magnitudes per frame pair: flows P×2×H×W -> P."""
    magnitude = flows.float().norm(dim=1).flatten(1)
    k = int(magnitude.shape[1] * share)
    if k == 0:
        raise ValueError(f"frames of {magnitude.shape[1]} pixels are too small for a top-{share:.0%} flow statistic")
    return magnitude.topk(k, dim=1).values.mean(1)


def is_dynamic(pair_scores: Tensor, fps: float, height: int, width: int, frames: int) -> bool:
    """VBench's decision from the per-pair scores of ``frames`` sampled frames of an H×W video at ``fps``."""
    threshold = max(1.0, 8.0 / fps) * 6.0 * min(height, width) / 256.0
    needed = max(1, round(4 * frames / 16))
    return int((pair_scores > threshold).sum()) >= needed


class DynamicDegree(PerVideoMetric):
    """Share of dynamic videos; ``flow_fn`` maps B×3×F×H×W in [-1, 1] to B×(F-1)×2×H×W pixel flows."""

    name = "dynamic_degree"
    higher_is_better = True

    def __init__(self, flow_fn: FlowFn, default_fps: float = 8.0, device: str | torch.device = "cpu",
                 chunk: int = 16) -> None:
        super().__init__()
        self.flow_fn = flow_fn
        self.default_fps = default_fps
        self.device = device
        self.chunk = chunk
        self.protocol = ("VBench: frames subsampled to ~8 fps at native size, RAFT flow, mean of the top 5% "
                         "magnitudes per pair vs a threshold scaled by fps and min(H, W)/256")

    def score(self, video: Tensor, meta: dict) -> VideoScore:
        fps = float(meta.get("fps") or self.default_fps)
        sampled = video[:: max(1, round(fps / 8))]
        if sampled.shape[0] < 2:
            return VideoScore(0.0, 0)
        scores = top_magnitude(video_flows(self.flow_fn, sampled, chunk=self.chunk, device=self.device))
        moving = is_dynamic(scores, fps, video.shape[1], video.shape[2], sampled.shape[0])
        return VideoScore(float(moving), 1)
