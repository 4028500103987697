"""The flow-matching time shift (SD3, Open-Sora) shared by training draws and the diffusers samplers."""
from __future__ import annotations

import math
from typing import Sequence

from torch import Tensor

__all__ = ["time_shift", "size_shift"]


def time_shift(t: Tensor, shift: float) -> Tensor:
    """``s·t / (1 + (s−1)·t)`` (diffusers' ``shift``; identity for s = 1)."""
    return shift * t / (1.0 + (shift - 1.0) * t)


def size_shift(shift: float, base_tokens: int, grid: Sequence[int]) -> float:
    """The shift for latents of grid (T, h, w): ``shift·√(T·h·w / base_tokens)``; ``shift`` when base is 0."""
    if not base_tokens:
        return float(shift)
    return float(shift) * math.sqrt(math.prod(int(g) for g in grid) / int(base_tokens))
