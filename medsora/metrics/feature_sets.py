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


def _factor(features: Tensor, weights: Tensor, unbiased: bool) -> tuple[Tensor, Tensor]:
    """Mean D and a factor A (D×n') with ``A Aᵀ`` = the weighted covariance (rows of weight 0 dropped)."""
    keep = weights > 0
    x, w = features[keep], weights[keep]
    total = w.sum()
    if total < 2:
        raise ValueError(f"a covariance needs at least 2 samples, got {float(total):.0f}")
    mean = (w @ x) / total
    factor = ((x - mean) * (w / (total - 1 if unbiased else total)).sqrt()[:, None]).T
    return mean, factor


def frechet_of_sets(sets: FeatureSets, counts: tuple[np.ndarray, np.ndarray] | None = None,
                    unbiased: bool = True) -> float:
    """Fréchet distance between the real and generated Gaussians, videos weighted by ``counts`` (real, fake).

    With fewer rows than feature dimensions (FVD's 400-d logits of a few hundred videos, every bootstrap
    resample) the covariances are ``Σ₁ = A Aᵀ``, ``Σ₂ = B Bᵀ`` of rank ≤ n, and
    ``tr((Σ₁Σ₂)^½)`` is the nuclear norm of ``AᵀB`` (the square roots of the eigenvalues of
    ``AᵀB BᵀA``): an n₁×n₂ SVD instead of two D×D eigendecompositions, exact and cheaper. Otherwise the D×D
    route of :func:`~medsora.metrics.frechet.frechet_distance`.
    """
    parts = []
    for i, real in enumerate((True, False)):
        features, _ = sets.matrix(real)
        parts.append((features, sets.row_weights(real, None if counts is None else counts[i])))
    dim = parts[0][0].shape[1]
    if max(int((w > 0).sum()) for _, w in parts) < dim:
        (mu_r, a), (mu_f, b) = (_factor(x, w, unbiased) for x, w in parts)
        diff = mu_r - mu_f
        cross = torch.linalg.svdvals(a.T @ b).sum()
        return float(diff.dot(diff) + a.square().sum() + b.square().sum() - 2 * cross)
    (mu_r, sigma_r), (mu_f, sigma_f) = (weighted_gaussian(x, w, unbiased=unbiased) for x, w in parts)
    return frechet_distance(mu_r, sigma_r, mu_f, sigma_f)
