"""Ultrasound-like clips: a sector view of a real cardiac cine loop with speckle and pulsation."""
from __future__ import annotations

import math

import numpy as np
import torch

from medsora.data.demo.assets import DemoAssets
from medsora.data.demo.render import base_grid, sample, smooth_noise

__all__ = ["make_ultrasound"]

# Sector geometry of pydicom's examples_ybr_color.dcm (320×240): apex, usable depth and half-angle.
_APEX_X, _APEX_Y, _HALF_ANGLE = 170.0, 20.0, math.radians(32)
_FPS = 15.0


def _cine(echo: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
    """Frames of the loop at fractional positions, played forwards then backwards (no jump at the end).

    Args:
        echo: N×H×W; position: T float. Returns T×1×H×W.
    """
    n = echo.shape[0]
    period = 2 * (n - 1)
    wrapped = torch.remainder(position, period)
    folded = torch.where(wrapped <= n - 1, wrapped, period - wrapped)
    low = folded.floor().long().clamp(max=n - 2)
    weight = (folded - low)[:, None, None]
    return ((1 - weight) * echo[low] + weight * echo[low + 1])[:, None]


def make_ultrasound(assets: DemoAssets, rng: np.random.Generator, frames: int, height: int, width: int):
    """Returns (video T×1×H×W float in [0, 1], caption, attributes).

    Attributes (manifest columns): ``heart_rate`` (beats per minute of the pulsation and the cine
    loop), ``gain`` (display gain factor), ``probe_tilt`` (peak probe sweep, degrees).
    """
    echo = assets.echo
    bpm = int(rng.choice([50, 65, 80, 100, 120]))
    depth = float(rng.uniform(150, 200))  # source pixels shown: deeper = more of the heart, smaller
    gain = float(rng.choice([0.8, 1.1, 1.4]))
    tilt = float(rng.choice([0.0, 0.0, math.radians(4), math.radians(8)]))
    # Systole (demo v3): the walls thicken and brighten, so the sector swells by ``pulse`` around mid-depth
    # and brightens by ``bright`` with the beat. In v2 (pulse 3-8 %, no brightening) the beat was a ~1 %
    # frame-mean cycle that no demo-scale model learned to steer (benchmarks/RESULTS.md, "Clinical control,
    # fourth run"); now the frame mean's std is ~22 % of the mean (v2: 8 %), 0.029 at 32 px in [-1, 1] (v2: 0.010).
    pulse = float(rng.uniform(0.15, 0.25))
    bright = float(rng.uniform(0.25, 0.35))
    t = torch.arange(frames, dtype=torch.float32)
    beats = bpm / 60.0 / _FPS  # heart cycles per output frame
    # ECG-triggered acquisition (demo v3): every clip starts at end-diastole, as prospectively gated cine
    # does, so the beat's phase at frame 0 is fixed and its timing follows from the heart rate alone.
    # The source loop holds one cycle in its 30 frames; forward+backward playback spans two loops per cycle.
    position = t * beats * 2 * (echo.shape[0] - 1)

    # Output sector: apex at the top centre.
    half = min(math.radians(float(rng.uniform(32, 42))), math.asin(min(0.98, 0.5 * width / (0.92 * height))))
    y, x = base_grid(height, width)
    px = (x + 1) / 2 * width - width / 2
    py = (y + 1) / 2 * height - 0.04 * height
    reach = 0.92 * height
    radius = torch.sqrt(px**2 + py**2) / reach  # 0 at the apex, 1 at full depth
    angle = torch.atan2(px, py) / half  # -1..1 across the sector
    inside = ((1 - radius) / 0.01).clamp(0, 1) * ((1 - angle.abs()) / 0.02).clamp(0, 1) * (py > 0)

    phase = 2 * math.pi * beats * t - math.pi / 2  # end-diastole (thinnest, darkest walls) at frame 0
    swell = 1 + pulse * torch.sin(phase)[:, None, None] * torch.exp(-(((radius - 0.55) / 0.25) ** 2))
    sweep = tilt * torch.sin(2 * math.pi * t / max(frames - 1, 1))[:, None, None]
    src_angle = angle * _HALF_ANGLE + sweep
    src_radius = radius * depth / swell
    sx = (_APEX_X + src_radius * torch.sin(src_angle)) / echo.shape[2] * 2 - 1
    sy = (_APEX_Y + src_radius * torch.cos(src_angle)) / echo.shape[1] * 2 - 1
    tissue = sample(_cine(echo, position), torch.stack([sx, sy], -1), padding="zeros")  # T×1×H×W

    # Speckle: Rayleigh amplitude of a complex field fixed to the tissue, slowly decorrelating,
    # elongated laterally (beam width) more than axially (pulse length).
    polar = (64, 96)
    base = smooth_noise(rng, (2, *polar), (0.6, 1.6))
    fresh = smooth_noise(rng, (frames, 2, *polar), (0.6, 1.6))
    field = math.cos(0.35) * base + math.sin(0.35) * fresh
    speckle = field.pow(2).sum(1, keepdim=True).sqrt() / math.sqrt(math.pi / 2) * 0.7  # mean 0.7·unit
    polar_grid = torch.stack([(angle * _HALF_ANGLE + sweep) / _HALF_ANGLE, src_radius / depth * 2 - 1], -1)
    speckle = sample(speckle, polar_grid)
    image = tissue * (0.45 + 0.55 * speckle) * 1.6 * gain * torch.exp(-0.6 * radius) + 0.03 * speckle
    image = image * inside * (1 + bright * torch.sin(phase))[:, None, None, None]
    # Depth marks along the right of the sector, as scanners draw them.
    for k in range(1, 5):
        row = int(0.04 * height + k * reach / 5)
        col = min(width - 2, int(width / 2 + reach * math.sin(half) * 0.9) + 2)
        if row < height - 1:
            image[:, :, row:row + 1, col:col + 1] = 0.9
    speed = "slow" if bpm < 65 else ("fast" if bpm > 95 else "normal")
    probe = "a steady probe" if tilt == 0 else "the probe tilting gently"
    gain_text = {0.8: "low", 1.1: "medium", 1.4: "high"}[gain]
    caption = (f"Ultrasound video: sector view of a beating heart at {bpm} beats per minute ({speed} rhythm), "
               f"{gain_text} gain, {probe}, with speckle.")
    attributes = {"heart_rate": bpm, "gain": gain, "probe_tilt": round(math.degrees(tilt), 3)}
    return image.clamp(0, 1), caption, attributes
