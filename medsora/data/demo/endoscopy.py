"""Endoscopy-like clips: a camera path panning, zooming and rotating over mucosa-coloured tissue."""
from __future__ import annotations

import math

import numpy as np
import torch

from medsora.data.demo.assets import DemoAssets
from medsora.data.demo.render import base_grid, rotation, sample

__all__ = ["make_endoscopy"]

_MOTIONS = ("pans", "advances", "withdraws", "rotates")
_SPEEDS = {"slowly": 0.5, "steadily": 1.0, "quickly": 1.7}
_DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1),
               "to the upper left": (-0.7, -0.7), "to the lower right": (0.7, 0.7)}


def _mucosa(tissue: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, int]:
    """Fundus colours -> pink mucosa, plus wet specular glints that move with the tissue."""
    r, g, b = tissue
    shift = float(rng.uniform(-0.04, 0.04))
    mucosa = torch.stack([0.25 + 0.85 * r, 0.18 + 0.9 * g + shift, 0.2 + 1.6 * b - shift]).clamp(0, 1)
    size = tissue.shape[-1]
    glints = int(rng.integers(4, 24))
    shine = torch.zeros(size, size)
    for cy, cx, radius in zip(rng.uniform(8, size - 8, glints), rng.uniform(8, size - 8, glints),
                              rng.uniform(1.0, 3.5, glints)):
        top, left = int(cy) - 8, int(cx) - 8  # a glint is tiny: draw it in its 17×17 neighbourhood
        yy = torch.arange(top, top + 17, dtype=torch.float32)[:, None]
        xx = torch.arange(left, left + 17, dtype=torch.float32)[None, :]
        spot = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2))
        shine[top:top + 17, left:left + 17] = torch.maximum(shine[top:top + 17, left:left + 17], spot)
    return mucosa * (1 - shine) + shine, glints


def make_endoscopy(assets: DemoAssets, rng: np.random.Generator, frames: int, height: int, width: int):
    """Returns (video T×3×H×W float in [0, 1], caption, attributes).

    Attributes (manifest columns): ``camera_motion`` (pans, advances, withdraws, rotates) and
    ``camera_speed`` (relative speed of that motion: 0.5, 1.0 or 1.7).
    """
    texture, glints = _mucosa(assets.tissue, rng)
    motion = _MOTIONS[int(rng.integers(len(_MOTIONS)))]
    speed_name = list(_SPEEDS)[int(rng.integers(len(_SPEEDS)))]
    speed = _SPEEDS[speed_name]
    t = torch.linspace(0, 1, frames)
    centre = torch.tensor(rng.uniform(-0.2, 0.2, 2), dtype=torch.float32).expand(frames, 2).clone()
    scale = torch.ones(frames)
    angle = torch.full((frames,), float(rng.uniform(0, 2 * math.pi)))
    if motion == "pans":
        direction = list(_DIRECTIONS)[int(rng.integers(len(_DIRECTIONS)))]
        centre += 0.35 * speed * (t[:, None] - 0.5) * torch.tensor(_DIRECTIONS[direction], dtype=torch.float32)
        motion_text = f"pans {speed_name} {direction}"
    elif motion in ("advances", "withdraws"):
        sign = -1.0 if motion == "advances" else 1.0
        scale = torch.exp(sign * 0.45 * speed * t)
        motion_text = f"{motion} {speed_name} ({'zooming in' if sign < 0 else 'zooming out'})"
    else:
        sign = float(rng.choice([-1.0, 1.0]))
        angle = angle + sign * 0.9 * speed * t
        motion_text = f"rotates {speed_name} {'clockwise' if sign > 0 else 'counter-clockwise'}"
    # Hand-held wobble on every path.
    phase = rng.uniform(0, 2 * math.pi, 2)
    wobble = 0.015 * torch.stack([torch.sin(2 * math.pi * 1.3 * t + phase[0]), torch.cos(2 * math.pi * 0.9 * t + phase[1])], -1)
    centre = centre + wobble

    # The view must stay inside the texture all along the path (no mirrored seams at its border).
    reach = float(centre.abs().max())
    fov = min(float(rng.uniform(0.3, 0.45)), (0.97 - reach) / (math.sqrt(2) * float(scale.max())))
    y, x = base_grid(height, width)
    extent = torch.tensor([width, height], dtype=torch.float32) / max(height, width) * fov
    local = torch.stack(torch.broadcast_tensors(x, y), -1) * extent  # H×W×2 (x, y)
    turned = torch.einsum("tij,hwj->thwi", rotation(angle), local) * scale[:, None, None, None]
    grid = turned + centre[:, None, None, :]
    video = sample(texture[None], grid)  # T×3×H×W

    # Light falls off from the scope's centre; the round optics black out the corners.
    radius = torch.sqrt(x**2 + y**2)
    light = (1.12 - 0.42 * radius**2).clamp_min(0) * ((1.3 - radius) / 0.1).clamp(0, 1)
    video = video * light
    caption = (f"Endoscopy video: the camera {motion_text} over pink mucosa with branching blood vessels"
               f"{', with many specular reflections' if glints > 14 else ''}.")
    return video.clamp(0, 1), caption, {"camera_motion": motion, "camera_speed": speed}
