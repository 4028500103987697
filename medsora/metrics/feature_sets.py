"""Per-video feature storage for the set metrics (FVD, FID, KID, CD-FVD), and the Fréchet statistic over it.

Features are kept per video (one row for a clip metric, one per frame for a frame
metric) so a set can be resampled *by video* for bootstrap intervals
(:mod:`medsora.metrics.bootstrap`): a video drawn k times weighs its rows by k.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from medsora.metrics.frechet import frechet_distance, weighted_gaussian

__all__ = ["FeatureSets", "frechet_of_sets"]


class FeatureSets:
    """Features of the real (``True``) and generated (``False``) sets, grouped by video."""

    def __init__(self) -> None:
        self._rows: dict[bool, list[Tensor]] = {True: [], False: []}
        self._cache: dict[bool, tuple[Tensor, Tensor]] = {}

    def add(self, real: bool, features: Tensor) -> None:
        """Append one video's features n×D (float32 on the CPU)."""
        if features.ndim != 2:
            raise ValueError(f"expected one video's features n×D, got shape {tuple(features.shape)}")
        self._rows[real].append(features.detach().float().cpu())
        self._cache.pop(real, None)

    def num_videos(self, real: bool) -> int:
        return len(self._rows[real])

    def num_rows(self, real: bool) -> int:
        return sum(f.shape[0] for f in self._rows[real])

    def matrix(self, real: bool) -> tuple[Tensor, Tensor]:
        """``(features N×D float64, video index N)`` of one set."""
        if real not in self._cache:
            rows = self._rows[real]
            if not rows:
                raise ValueError("no video in this set")
            groups = torch.cat([torch.full((f.shape[0],), i, dtype=torch.long) for i, f in enumerate(rows)])
            self._cache[real] = (torch.cat(rows).double(), groups)
        return self._cache[real]

    def row_weights(self, real: bool, counts: np.ndarray | None) -> Tensor:
        """Per-row weights from per-video multiplicities (ones when ``counts`` is None)."""
        _, groups = self.matrix(real)
        if counts is None:
            return torch.ones(groups.numel(), dtype=torch.float64)
        return torch.as_tensor(counts, dtype=torch.float64)[groups]


def frechet_of_sets(sets: FeatureSets, counts: tuple[np.ndarray, np.ndarray] | None = None,
                    unbiased: bool = True) -> float:
    """Fréchet distance between the real and generated Gaussians, videos weighted by ``counts`` (real, fake)."""
    stats = []
    for i, real in enumerate((True, False)):
        features, _ = sets.matrix(real)
        stats.append(weighted_gaussian(features, sets.row_weights(real, None if counts is None else counts[i]),
                                       unbiased=unbiased))
    (mu_r, sigma_r), (mu_f, sigma_f) = stats
    return frechet_distance(mu_r, sigma_r, mu_f, sigma_f)
