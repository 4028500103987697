"""VBench motion smoothness, with a RAFT flow interpolator standing in for AMT.

VBench drops every odd frame, re-creates each one with the AMT frame-interpolation
network from its two even neighbours, and scores ``(255 - MAE) / 255`` between the
re-created and the original odd frames (uint8, native size), averaged over videos:
smooth motion is predictable from its neighbours, jerky motion is not.

AMT is not available here, so the interpolator is a flow-based one: RAFT flows in
both directions between the even neighbours, the intermediate flows of Super SloMo
at t = 1/2 (``F_t0 = (F_10 - F_01) / 4``, ``F_t1 = (F_01 - F_10) / 4``), and the
average of the two backward-warped neighbours, without AMT's learned refinement.
Scores are therefore comparable between our models but not with VBench's tables; the
report says this proxy was used.
"""
from __future__ import annotations

import torch
from torch import Tensor

from medsora.metrics.base import PerVideoMetric, VideoScore
from medsora.metrics.flow_fields import FlowFn, backward_warp, video_flows

__all__ = ["MotionSmoothness", "interpolate_midframes"]


def interpolate_midframes(frames: Tensor, forward: Tensor, backward: Tensor) -> Tensor:
    """Frames half-way between consecutive frames.

    frames: uint8 K×H×W×3; forward: flows (K-1)×2×H×W from frame k to k+1; backward: from k+1 to k.
    Returns uint8 (K-1)×H×W×3.
    """
    x = frames.permute(0, 3, 1, 2).float()
    to_prev = (backward - forward) / 4
    to_next = (forward - backward) / 4
    mid = 0.5 * backward_warp(x[:-1], to_prev) + 0.5 * backward_warp(x[1:], to_next)
    return mid.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


class MotionSmoothness(PerVideoMetric):
    """Motion smoothness; ``flow_fn`` maps B×3×F×H×W in [-1, 1] to B×(F-1)×2×H×W pixel flows."""

    name = "motion_smoothness"
    higher_is_better = True
    protocol = ("VBench protocol (odd frames re-created from even ones, (255 - MAE) / 255, native frames) with a "
                "PROXY interpolator: RAFT bidirectional flow + Super SloMo t=1/2 warping instead of AMT")

    def __init__(self, flow_fn: FlowFn, device: str | torch.device = "cpu", chunk: int = 16) -> None:
        super().__init__()
        self.flow_fn = flow_fn
        self.device = device
        self.chunk = chunk

    def score(self, video: Tensor, meta: dict) -> VideoScore:
        even = video[0::2]
        if even.shape[0] < 2:
            return VideoScore(0.0, 0)
        forward = video_flows(self.flow_fn, even, chunk=self.chunk, device=self.device)
        backward = video_flows(self.flow_fn, even.flip(0), chunk=self.chunk, device=self.device).flip(0)
        predicted = interpolate_midframes(even, forward, backward)
        original = video[1::2][: predicted.shape[0]]
        mae = (predicted.float() - original.float()).abs().mean()
        return VideoScore(float((255.0 - mae) / 255.0), 1)
