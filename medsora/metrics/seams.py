"""Seams of a long video: how much the picture jumps where one sampling window hands over to the next.

The measure is the mean absolute difference between consecutive frames (pixels in [-1, 1] or uint8,
averaged over channels and pixels), compared at the window seams with everywhere else. A seam is the
transition into the first frame of a window's own latent frame ``j`` (:func:`medsora.diffusion.extend.
seam_frames`): with a VAE of temporal stride ``s`` latent frame ``j ≥ 1`` decodes to video frames
``s(j−1)+1 … sj``, so the seam is the transition from frame ``s(j−1)`` to ``s(j−1)+1`` (index ``s(j−1)``
of the ``F−1`` transitions). Transitions between latent frames inside a window differ from those within
one latent frame's group (the causal VAE decodes a group together), so the ratio is also given against
the latent-frame transitions inside windows alone (``ratio_same_phase``).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

__all__ = ["frame_differences", "seam_statistics", "seam_transitions"]


def frame_differences(video: Tensor) -> Tensor:
    """Mean |frame[k+1] − frame[k]| per transition: ``B×C×F×H×W`` (or ``C×F×H×W``) -> ``B×(F−1)`` float64."""
    if video.dim() == 4:
        video = video[None]
    if video.dim() != 5 or video.shape[2] < 2:
        raise ValueError(f"expected videos B×C×F×H×W with F >= 2, got {tuple(video.shape)}")
    v = video.double()
    return (v[:, :, 1:] - v[:, :, :-1]).abs().mean(dim=(1, 3, 4))


def seam_transitions(seams: Sequence[int], stride: int) -> list[int]:
    """Transition indices (into :func:`frame_differences`) of the seams at latent frames ``seams``."""
    if any(j < 1 for j in seams):
        raise ValueError(f"seam latent frames must be >= 1, got {list(seams)}")
    return [stride * (j - 1) for j in seams]


def seam_statistics(diffs: Tensor, seams: Sequence[int], stride: int) -> dict:
    """Mean frame difference at the seams against within windows.

    Args:
        diffs: ``B×(F−1)`` from :func:`frame_differences`.
        seams: latent frames where windows begin their own frames.
        stride: the VAE's temporal stride.
    Returns:
        ``{"seam", "within", "ratio", "within_same_phase", "ratio_same_phase", "seams"}``: means over the
        videos and transitions; ``within_same_phase`` counts only transitions between latent frames.
    """
    if diffs.dim() == 1:
        diffs = diffs[None]
    n = diffs.shape[1]
    at = seam_transitions(seams, stride)
    if not at or max(at) >= n:
        raise ValueError(f"seams at transitions {at} do not fit a video of {n + 1} frames")
    is_seam = torch.zeros(n, dtype=torch.bool)
    is_seam[at] = True
    phase = torch.zeros(n, dtype=torch.bool)
    phase[::stride] = True  # transitions from frame s(j-1) to s(j-1)+1: into latent frame j
    seam = diffs[:, is_seam].mean().item()
    within = diffs[:, ~is_seam].mean().item()
    same = diffs[:, phase & ~is_seam]
    same_phase = same.mean().item() if same.numel() else float("nan")
    return {"seam": seam, "within": within, "ratio": seam / within if within else float("inf"),
            "within_same_phase": same_phase,
            "ratio_same_phase": seam / same_phase if same.numel() and same_phase else float("nan"),
            "seams": len(at)}
