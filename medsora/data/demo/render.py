"""Small torch helpers the demo generators share: sampling grids and resampling."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["base_grid", "sample", "smooth_noise", "rotation", "to_uint8"]


def base_grid(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates in [-1, 1] (align_corners=False convention): y H×1, x 1×W."""
    y = (torch.arange(height, dtype=torch.float32) + 0.5) / height * 2 - 1
    x = (torch.arange(width, dtype=torch.float32) + 0.5) / width * 2 - 1
    return y[:, None], x[None, :]


def sample(source: torch.Tensor, grid: torch.Tensor, padding: str = "reflection") -> torch.Tensor:
    """Bilinear resampling.

    Args:
        source: N×C×H×W (or 1×C×H×W, broadcast over the grid batch).
        grid: N×H'×W'×2, (x, y) in [-1, 1] of the source.
    Returns:
        N×C×H'×W'.
    """
    if source.shape[0] == 1 and grid.shape[0] > 1:
        source = source.expand(grid.shape[0], -1, -1, -1)
    return F.grid_sample(source, grid, mode="bilinear", padding_mode=padding, align_corners=False)


def rotation(angle: torch.Tensor | float) -> torch.Tensor:
    """2×2 (or …×2×2) rotation matrices."""
    angle = torch.as_tensor(angle, dtype=torch.float32)
    cos, sin = torch.cos(angle), torch.sin(angle)
    return torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: tuple[float, float]) -> torch.Tensor:
    """Gaussian white noise blurred over the last two axes (sigma in pixels: rows, cols), unit std.

    Args:
        shape: …×H×W.
    """
    noise = torch.from_numpy(rng.standard_normal(shape).astype(np.float32))
    flat = noise.reshape(-1, 1, *shape[-2:])
    for axis, s in ((2, sigma[0]), (3, sigma[1])):
        radius = max(1, int(3 * s))
        taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float32) / max(s, 1e-3)) ** 2)
        taps = (taps / taps.sum()).view(1, 1, -1, 1) if axis == 2 else (taps / taps.sum()).view(1, 1, 1, -1)
        pad = (0, 0, radius, radius) if axis == 2 else (radius, radius, 0, 0)
        flat = F.conv2d(F.pad(flat, pad, mode="circular"), taps)
    flat = flat / flat.std().clamp_min(1e-6)
    return flat.reshape(shape)


def to_uint8(video: torch.Tensor) -> np.ndarray:
    """T×C×H×W float in [0, 1] (C = 1 or 3) -> T×H×W×3 uint8."""
    if video.shape[1] == 1:
        video = video.expand(-1, 3, -1, -1)
    return (video.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
