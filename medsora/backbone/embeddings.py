"""Inputs of the backbone: patch embedding, sin-cos positions for any grid, timesteps."""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["PatchEmbed", "sincos_1d", "sincos_grid", "TimestepEmbedder"]


class PatchEmbed(nn.Module):
    """Latent video ``B×C×T×H×W`` -> token grid ``B×T×h×w×D`` with ``h = H/patch``.

    Patches are ``1×patch×patch`` (time is never patched, so image mode T = 1 works
    and every latent frame keeps its own tokens).
    """

    def __init__(self, in_channels: int, hidden: int, patch: int):
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv3d(in_channels, hidden, kernel_size=(1, patch, patch), stride=(1, patch, patch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5:
            raise ValueError(f"MedSoraDiT expects latents B×C×T×H×W, got shape {tuple(x.shape)}")
        _, c, _, height, width = x.shape
        if c != self.proj.in_channels:
            raise ValueError(
                f"MedSoraDiT was built for {self.proj.in_channels} latent channels but got {c} "
                f"(input shape {tuple(x.shape)}); pass in_channels= the VAE's latent channels"
            )
        if height % self.patch or width % self.patch:
            raise ValueError(
                f"latent height/width {height}×{width} must be multiples of model.patch={self.patch}; "
                f"change data.size or model.patch"
            )
        return self.proj(x).permute(0, 2, 3, 4, 1)


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """MAE/DiT sin-cos embedding of ``positions`` (any shape ``*S``) -> ``*S×dim`` (float64)."""
    if dim % 2:
        raise ValueError(f"sin-cos embedding needs an even dimension, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))
    angles = positions.to(torch.float64)[..., None] * omega
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


def sincos_grid(dim: int, frames: int, height: int, width: int) -> torch.Tensor:
    """Position embedding of a ``frames×height×width`` token grid -> ``T×H×W×dim`` (float32).

    The spatial part is DiT's 2-D sin-cos (half the channels for the row, half for the
    column); the temporal 1-D sin-cos over all channels is added on top, as Latte does.
    Computed for the grid at hand, so any resolution or clip length works.
    """
    if dim % 4:
        raise ValueError(f"model.hidden must be a multiple of 4 for 2-D sin-cos positions, got {dim}")
    rows = sincos_1d(dim // 2, torch.arange(height))[:, None, :].expand(height, width, dim // 2)
    cols = sincos_1d(dim // 2, torch.arange(width))[None, :, :].expand(height, width, dim // 2)
    spatial = torch.cat([rows, cols], dim=-1)
    temporal = sincos_1d(dim, torch.arange(frames))
    return (spatial[None] + temporal[:, None, None]).float()


class TimestepEmbedder(nn.Module):
    """Diffusion timesteps ``B`` (float or integer) -> ``B×hidden`` (DiT's embedder)."""

    def __init__(self, hidden: int, frequency_dim: int = 256):
        super().__init__()
        self.frequency_dim = frequency_dim
        self.mlp = nn.Sequential(nn.Linear(frequency_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.frequency_dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
        args = t.float()[:, None] * freqs[None]
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        return self.mlp(emb.to(self.mlp[0].weight.dtype))
