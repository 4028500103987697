"""Map pixel-frame flows onto the latent token grid of the causal VAE + patchified backbone.

Temporal mapping (VAE with causal temporal stride ``s``, 4 for CogVideoX-style VAEs)::

    pixel frames   0 | 1 2 3 4 | 5 6 7 8 | ...
    latent frames  0 |    1    |    2    | ...      T = 1 + (F - 1) / s

Flow ``i`` is the motion from pixel frame ``i`` to ``i + 1`` (``i = 0 .. F-2``).

* latent frame ``k >= 1`` encodes pixel frames ``s(k-1)+1 .. sk``; it is paired with the
  flows *arriving* in those frames, ``i = s(k-1) .. sk-1`` (averaged), i.e. exactly the
  motion that happened inside the span the latent frame encodes;
* latent frame ``0`` encodes pixel frame 0 alone, which has no incoming motion; it is paired
  with the flow ``0 -> 1`` (``i = 0``), the motion leaving the first frame.

Spatially, targets are pooled (area average) to the token grid ``(H/8/patch, W/8/patch)``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

VAE_TEMPORAL_STRIDE = 4
VAE_SPATIAL_STRIDE = 8


def token_grid(num_frames: int, height: int, width: int, patch: int = 2,
               temporal_stride: int = VAE_TEMPORAL_STRIDE,
               spatial_stride: int = VAE_SPATIAL_STRIDE) -> tuple[int, int, int]:
    """``(T, h, w)`` of the backbone's token grid for clips of ``num_frames×height×width`` pixels.

    Raises:
        ValueError: the clip does not map onto whole latent frames / tokens.
    """
    if (num_frames - 1) % temporal_stride:
        raise ValueError(
            f"data.num_frames={num_frames}: the causal VAE needs 1 + {temporal_stride}·k frames "
            f"(e.g. {1 + temporal_stride * max(1, (num_frames - 1) // temporal_stride)})"
        )
    cell = spatial_stride * patch
    if height % cell or width % cell:
        raise ValueError(f"data.size: frames of {height}×{width} px are not a multiple of "
                         f"{cell} (VAE stride {spatial_stride} × patch {patch})")
    return 1 + (num_frames - 1) // temporal_stride, height // cell, width // cell


def latent_frame_groups(num_frames: int, latent_frames: int) -> list[list[int]]:
    """Indices of the pixel flows averaged into each latent frame (see the module docstring).

    Args:
        num_frames: pixel frames ``F`` of the clip (``F - 1`` flows).
        latent_frames: latent frames ``T``; the temporal stride is ``(F - 1) / (T - 1)``.
    Returns:
        ``T`` lists of flow indices; e.g. ``F=9, T=3 -> [[0], [0,1,2,3], [4,5,6,7]]``.
    """
    if num_frames < 2:
        raise ValueError(f"optical-flow targets need at least 2 frames, got a clip of {num_frames}")
    if latent_frames < 2 or (num_frames - 1) % (latent_frames - 1):
        raise ValueError(
            f"{num_frames} pixel frames do not map onto {latent_frames} latent frames of a causal VAE "
            "(need F = 1 + s·(T-1) for an integer temporal stride s, T >= 2)"
        )
    stride = (num_frames - 1) // (latent_frames - 1)
    return [[0]] + [list(range(stride * (k - 1), stride * k)) for k in range(1, latent_frames)]


def group_matrix(num_frames: int, latent_frames: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """``T×(F-1)`` averaging matrix: row ``k`` averages the flows of latent frame ``k``."""
    groups = latent_frame_groups(num_frames, latent_frames)
    mat = torch.zeros(latent_frames, num_frames - 1, device=device, dtype=dtype)
    for k, idx in enumerate(groups):
        mat[k, idx] = 1.0 / len(idx)
    return mat


def aggregate_frames(per_flow: torch.Tensor, latent_frames: int) -> torch.Tensor:
    """Average per-flow tensors into per-latent-frame tensors.

    Args:
        per_flow: ``B×(F-1)×...`` (anything after the flow axis).
    Returns:
        ``B×T×...``.
    """
    mat = group_matrix(per_flow.shape[1] + 1, latent_frames, per_flow.device, per_flow.dtype)
    return torch.einsum("tf,bf...->bt...", mat, per_flow)


def pool_to_grid(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Area-average ``N×D×H×W`` maps to ``N×D×h×w`` (``adaptive_avg_pool2d``; exact for H = k·h)."""
    return F.adaptive_avg_pool2d(maps, size)
