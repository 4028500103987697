"""MRI clips: scrolling through the slices of a real brain volume under a periodic, breathing-like deformation."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from medsora.data.demo.assets import DemoAssets
from medsora.data.demo.render import base_grid

__all__ = ["make_mri"]


def make_mri(assets: DemoAssets, rng: np.random.Generator, frames: int, height: int, width: int, fps: float = 6.0):
    """Returns (video T×1×H×W float in [0, 1], caption, attributes).

    Attributes (manifest columns): ``breathing_rate`` (deformation cycles per minute at ``fps``)
    and ``scroll`` (up: towards the vertex, down: towards the skull base).
    """
    volume = assets.brain  # D×H×W, axial slices
    depth, vh, vw = volume.shape
    t = torch.arange(frames, dtype=torch.float32)
    # Slice position in the volume's normalised z (-1 bottom .. 1 top); the brain fills about -0.7..0.6.
    span = float(rng.choice([0.25, 0.5, 0.9]))
    direction = float(rng.choice([-1.0, 1.0]))
    centre = float(rng.uniform(-0.2, 0.0))
    z = centre + direction * span * (t / max(frames - 1, 1) - 0.5)
    period = float(rng.choice([8.0, 12.0, 16.0]))
    amplitude = float(rng.uniform(0.02, 0.06))
    phase = float(rng.uniform(0, 2 * math.pi))
    breath = torch.sin(2 * math.pi * t / period + phase)
    zoom = float(rng.uniform(0.9, 1.15))

    y, x = base_grid(height, width)
    aspect, volume_aspect = width / height, vw / vh
    fx, fy = (zoom * aspect / volume_aspect, zoom) if aspect > volume_aspect else (zoom, zoom * volume_aspect / aspect)
    gx = (x * fx).expand(height, width)
    gy = (y * fy).expand(height, width)
    # Breathing: the anatomy expands and sinks periodically, more towards the bottom of the image.
    gxt = gx[None] / (1 + amplitude * breath[:, None, None])
    gyt = (gy[None] - amplitude * breath[:, None, None] * (0.6 + 0.4 * gy[None])) / (1 + 0.5 * amplitude * breath[:, None, None])
    gzt = z[:, None, None].expand(frames, height, width)
    grid = torch.stack([gxt, gyt, gzt], -1)[None]  # 1×T×H×W×3
    slices = F.grid_sample(volume[None, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0, 0]
    gamma = float(rng.choice([0.8, 1.0, 1.25]))
    # Magnitude images carry Rician noise: |signal + complex Gaussian|.
    sigma = 0.025
    real = slices.clamp(0, 1) ** gamma + sigma * torch.from_numpy(rng.standard_normal(slices.shape).astype(np.float32))
    imag = sigma * torch.from_numpy(rng.standard_normal(slices.shape).astype(np.float32))
    video = torch.sqrt(real**2 + imag**2)[:, None]
    way = "upwards (towards the vertex)" if direction > 0 else "downwards (towards the skull base)"
    pace = {0.25: "slowly", 0.5: "steadily", 0.9: "quickly"}[span]
    contrast = {0.8: "bright", 1.0: "standard", 1.25: "dark"}[gamma]
    caption = (f"MRI video: axial brain slices scrolling {pace} {way}, {contrast} contrast, with a breathing-like "
               f"deformation every {int(period)} frames.")
    attributes = {"breathing_rate": round(60.0 * fps / period, 3), "scroll": "up" if direction > 0 else "down"}
    return video.clamp(0, 1), caption, attributes
