"""Random draws of a training step as a pure function of (seed, step key), shared across ranks.

Every random number of a training step (timesteps, noise, latent posterior samples, condition
dropout, joint-image frame picks) is drawn here for the *global* batch of all ranks from a
generator seeded by the step key, and each rank keeps its own rows. Hence:

* resuming from a checkpoint reproduces the uninterrupted run exactly (the draws do not depend
  on the RNG state, which Lightning does not checkpoint);
* N processes with per-rank batch B draw exactly what one process with batch N·B draws, so DDP
  training equals single-process training on the combined batch (see ``ResumableSampler``,
  which deals rank r the global positions r, r+N, r+2N, ...).
"""
from __future__ import annotations

import hashlib
from typing import Sequence

import torch
from torch import Tensor

__all__ = ["BatchRandom", "step_seed"]


def step_seed(*key: int | str) -> int:
    """A 63-bit seed from a key such as (run seed, "train", epoch, batch index)."""
    digest = hashlib.sha256(repr(tuple(key)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class BatchRandom:
    """Draws for one global batch; ``rank`` keeps rows ``rank, rank + world, ...``.

    Args:
        seed: from :func:`step_seed`.
        rank, world: this process's rank and the number of processes.
        device: where the numbers are drawn (a CUDA generator on GPU).
    """

    def __init__(self, seed: int, rank: int = 0, world: int = 1, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.generator = torch.Generator(self.device).manual_seed(int(seed))
        self.rank, self.world = int(rank), int(world)

    def _mine(self, x: Tensor) -> Tensor:
        return x[self.rank::self.world]

    def randn(self, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> Tensor:
        """Standard normal of the local ``shape`` (first axis: local batch)."""
        full = (shape[0] * self.world, *shape[1:])
        return self._mine(torch.randn(full, generator=self.generator, device=self.device, dtype=dtype))

    def rand(self, shape: Sequence[int]) -> Tensor:
        """Uniform [0, 1) of the local ``shape``."""
        full = (shape[0] * self.world, *shape[1:])
        return self._mine(torch.rand(full, generator=self.generator, device=self.device))

    def randint(self, high: int, shape: Sequence[int]) -> Tensor:
        """Integers in [0, high) of the local ``shape``."""
        full = (shape[0] * self.world, *shape[1:])
        return self._mine(torch.randint(0, high, full, generator=self.generator, device=self.device))
