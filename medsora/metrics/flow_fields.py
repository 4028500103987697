"""Optical flow for the motion metrics: the RAFT teacher over whole videos, and backward warping.

A flow function maps videos B×3×F×H×W in [-1, 1] to pixel flows B×(F-1)×2×H×W
between consecutive frames (channel 0 = x, 1 = y; a pixel at p in frame i moves to
p + flow in frame i+1), which is ``medsora.flow.teacher.FlowTeacher.flows``.
"""
from __future__ import annotations

import os
from typing import Callable

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["FlowFn", "backward_warp", "load_raft_flow", "video_flows"]

FlowFn = Callable[[Tensor], Tensor]


def load_raft_flow(weights: str | os.PathLike, device: str | torch.device = "cpu", iters: int = 20) -> FlowFn:
    """RAFT-large from a local torchvision weights file through the project's frozen flow teacher;
    20 refinement iterations as VBench runs RAFT."""
    from medsora.flow.teacher import FlowTeacher

    teacher = FlowTeacher(arch="raft_large", weights=str(weights), iters=iters).to(device).eval()
    return teacher.flows


@torch.no_grad()
def video_flows(flow_fn: FlowFn, frames: Tensor, chunk: int = 16, device: str | torch.device = "cpu",
                max_pixels: int = 1 << 22) -> Tensor:
    """Flows (T-1)×2×H×W of one uint8 video T×H×W×3, computed at most ``chunk`` frames (and about
    ``max_pixels`` pixels: RAFT's all-pairs correlation grows with the square of the frame area) at a time."""
    height, width = frames.shape[1:3]
    chunk = max(2, min(chunk, 1 + max_pixels // (height * width)))
    video = frames.permute(3, 0, 1, 2).float().div(127.5).sub(1)  # 3×T×H×W in [-1, 1]
    out = []
    for start in range(0, frames.shape[0] - 1, chunk - 1):
        window = video[:, start:start + chunk].unsqueeze(0).to(device)
        out.append(flow_fn(window)[0].float().cpu())
    return torch.cat(out)


def backward_warp(image: Tensor, flow: Tensor) -> Tensor:
    """Sample ``image`` N×C×H×W at p + flow(p) (flow N×2×H×W in pixels), bilinear, borders replicated."""
    n, _, h, w = image.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=flow.dtype, device=flow.device),
                            torch.arange(w, dtype=flow.dtype, device=flow.device), indexing="ij")
    x = (xs + flow[:, 0]) * (2 / max(w - 1, 1)) - 1
    y = (ys + flow[:, 1]) * (2 / max(h - 1, 1)) - 1
    grid = torch.stack((x, y), dim=-1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)
