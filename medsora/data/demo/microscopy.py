"""Cell microscopy clips: real phase-contrast cells migrating and dividing over a culture background."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from medsora.data.demo.assets import DemoAssets
from medsora.data.demo.render import base_grid, rotation, sample

__all__ = ["make_microscopy"]

_MITOSIS = 4  # frames a dividing cell rounds up, brightens and elongates before it splits


@dataclass
class _Cell:
    """A cell's track from the frame it appears: positions (normalised frame coordinates) and looks."""

    born: int
    radius: float
    axis: float  # orientation of its division axis (radians)
    velocity: np.ndarray
    split_at: int | None = None
    position: list = field(default_factory=list)  # (x, y) per frame from ``born`` on
    brightness: list = field(default_factory=list)
    stretch: list = field(default_factory=list)


def _daughters(cell: _Cell, t: int, rng: np.random.Generator, step: float) -> list[_Cell]:
    x, y = cell.position[-1]
    direction = np.array([math.cos(cell.axis), math.sin(cell.axis)])
    children = []
    for sign in (-1.0, 1.0):
        child = _Cell(born=t, radius=cell.radius * 0.8, axis=float(rng.uniform(0, math.pi)),
                      velocity=sign * 3 * step * direction)
        child.position.append((x + sign * 0.5 * cell.radius * direction[0], y + sign * 0.5 * cell.radius * direction[1]))
        child.brightness.append(1.2)
        child.stretch.append(1.0)
        children.append(child)
    return children


def _tracks(rng: np.random.Generator, frames: int, count: int, radius: float, step: float, divisions: int) -> list[_Cell]:
    """Persistent random walks; the first ``divisions`` cells round up and split into two daughters."""
    cells = []
    for index, xy in enumerate(rng.uniform(-0.8, 0.8, (count, 2))):
        cell = _Cell(born=0, radius=radius * float(rng.uniform(0.8, 1.2)), axis=float(rng.uniform(0, math.pi)),
                     velocity=rng.normal(0, step, 2))
        if index < divisions:
            cell.split_at = int(rng.integers(_MITOSIS + 1, max(frames - 3, _MITOSIS + 2)))
        cell.position.append((float(xy[0]), float(xy[1])))
        cells.append(cell)
    alive = list(cells)
    for t in range(frames):
        born = []
        for cell in list(alive):
            if cell.split_at == t:
                alive.remove(cell)
                born.extend(_daughters(cell, t, rng, step))
                continue
            if t > cell.born:
                cell.velocity = 0.85 * cell.velocity + rng.normal(0, step, 2)
                x, y = np.clip(np.asarray(cell.position[-1]) + cell.velocity, -0.95, 0.95)
                cell.position.append((float(x), float(y)))
            lead = cell.split_at - t if cell.split_at is not None else _MITOSIS
            rounding = min(max(1 - lead / _MITOSIS, 0.0), 1.0)  # mitotic cells round up and brighten
            glow = 0.2 * max(0.0, 1 - (t - cell.born) / 4) if cell.born > 0 else 0.0  # fresh daughters
            cell.brightness.append(1.0 + 0.25 * rounding + glow)
            cell.stretch.append(1.0 + 0.45 * rounding)
        alive.extend(born)
        cells.extend(born)
    return cells


def make_microscopy(assets: DemoAssets, rng: np.random.Generator, frames: int, height: int, width: int):
    """Returns (video T×3×H×W float in [0, 1], caption, attributes).

    Attributes (manifest columns): ``cell_count`` (cells at the start), ``divisions`` (cells that
    divide) and ``migration`` (slow or fast).
    """
    y, x = base_grid(height, width)
    # The culture background drifts slowly (stage drift); a random window of the real image.
    culture = assets.culture
    ch, cw = culture.shape[-2:]
    view = float(rng.uniform(0.45, 0.7))
    vx, vy = view * width / max(height, width), view * height / max(height, width) * cw / ch
    origin = rng.uniform(-1 + vx, 1 - vx), rng.uniform(-1 + min(vy, 0.99), 1 - min(vy, 0.99))
    drift = rng.normal(0, 0.004, 2)
    t = torch.arange(frames, dtype=torch.float32)[:, None, None]
    grid = torch.stack(torch.broadcast_tensors(origin[0] + drift[0] * t + x * vx, origin[1] + drift[1] * t + y * vy), -1)
    video = sample(culture[None], grid)  # T×1×H×W

    count = int(rng.integers(4, 11))
    fast = bool(rng.integers(2))
    divisions = int(rng.choice([0, 1, 1, 2, 3]))
    radius = float(rng.uniform(0.09, 0.14))  # cell body radius, fraction of the half frame's short side
    cells = _tracks(rng, frames, count, radius, 0.02 if fast else 0.007, min(divisions, count))
    sprite = assets.cell[None]  # 1×2×s×s (value, alpha); the body spans ~0.78 of the sprite's half-width
    short = min(height, width)
    for cell in cells:
        steps = len(cell.position)
        at = slice(cell.born, cell.born + steps)
        pos = torch.tensor(cell.position, dtype=torch.float32)
        half = cell.radius / 0.78  # sprite half-extent in units of the short half-side
        sx, sy = half * short / width, half * short / height
        stretch = torch.tensor(cell.stretch, dtype=torch.float32)[:, None, None]
        local = torch.stack(torch.broadcast_tensors((x - pos[:, 0, None, None]) / sx, (y - pos[:, 1, None, None]) / sy), -1)
        local = torch.einsum("ij,thwj->thwi", rotation(-cell.axis), local)
        local = local / torch.stack([stretch, 1 / stretch], -1)
        drawn = sample(sprite, local, padding="zeros")  # steps×2×H×W
        value = drawn[:, :1] * torch.tensor(cell.brightness, dtype=torch.float32)[:, None, None, None]
        alpha = drawn[:, 1:]
        video[at] = video[at] * (1 - alpha) + value * alpha
    tint = torch.tensor([0.93, 1.0, 0.9]).view(1, 3, 1, 1)  # the green filter of a phase-contrast lamp
    pace = "quickly" if fast else "slowly"
    division_text = ("no cell divides" if divisions == 0 else
                     f"{divisions} cell{'s' if divisions > 1 else ''} divide{'' if divisions > 1 else 's'} into two daughter cells")
    caption = f"Cell microscopy video (phase contrast): {count} cells migrating {pace} over the culture; {division_text}."
    attributes = {"cell_count": count, "divisions": divisions, "migration": pace.replace("quickly", "fast").replace("slowly", "slow")}
    return (video * tint).clamp(0, 1), caption, attributes
