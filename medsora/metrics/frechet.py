"""Fréchet distance between Gaussians fitted to feature sets (FVD, FID), in float64.

``FD = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))``.

Why our own matrix square root: the reference implementations call
``scipy.linalg.sqrtm(S1 @ S2)``. The product of two covariances is not symmetric, so
sqrtm runs a complex Schur decomposition; when the covariances are rank-deficient —
always the case for FVD's 400-d features with fewer than 401 videos — the product has
(near-)zero eigenvalues whose square roots are ill-conditioned, and sqrtm returns
complex values or inaccurate results (hence the ``eps * I`` retries and ``np.real``
in those codebases). We use the identity
``tr((S1 S2)^(1/2)) = tr((A S2 A)^(1/2))`` with ``A = S1^(1/2)``: both square roots are
of symmetric positive semi-definite matrices, taken by a symmetric eigendecomposition
(``eigh``) with tiny negative round-off eigenvalues clipped to 0. Every step is real
and backward stable; the result agrees with sqrtm where sqrtm is well conditioned.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["GaussianAccumulator", "frechet_distance", "gaussian_stats", "sqrtm_psd", "trace_sqrt_product",
           "weighted_gaussian"]


def _psd_eigvals(eigvals: Tensor) -> Tensor:
    """Zero the eigenvalues below numerical-rank tolerance (as ``matrix_rank`` does): they are round-off of
    true zeros, and their square roots (~sqrt(eps)) would otherwise add up to a visible bias."""
    tol = eigvals.abs().max() * eigvals.numel() * torch.finfo(eigvals.dtype).eps
    return torch.where(eigvals > tol, eigvals, torch.zeros_like(eigvals))


def sqrtm_psd(matrix: Tensor) -> Tensor:
    """Square root of a symmetric PSD matrix (D×D) by eigendecomposition, in float64."""
    sym = matrix.double()
    sym = (sym + sym.T) / 2
    eigvals, eigvecs = torch.linalg.eigh(sym)
    return (eigvecs * _psd_eigvals(eigvals).sqrt()) @ eigvecs.T


def trace_sqrt_product(sigma1: Tensor, sigma2: Tensor) -> Tensor:
    """``tr((sigma1 sigma2)^(1/2))`` for symmetric PSD D×D matrices, as a float64 scalar."""
    root1 = sqrtm_psd(sigma1)
    inner = root1 @ sigma2.double() @ root1
    eigvals = torch.linalg.eigvalsh((inner + inner.T) / 2)
    return _psd_eigvals(eigvals).sqrt().sum()


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """Fréchet (2-Wasserstein squared) distance between N(mu1, sigma1) and N(mu2, sigma2).

    mu: D, sigma: D×D. Computed in float64.
    """
    mu1, mu2, sigma1, sigma2 = (t.detach().cpu().double() for t in (mu1, mu2, sigma1, sigma2))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.numel(), mu1.numel()):
        raise ValueError(
            f"Fréchet distance needs means of equal length D and D×D covariances; got mu1 {tuple(mu1.shape)}, "
            f"mu2 {tuple(mu2.shape)}, sigma1 {tuple(sigma1.shape)}, sigma2 {tuple(sigma2.shape)}"
        )
    diff = mu1 - mu2
    value = diff.dot(diff) + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt_product(sigma1, sigma2)
    return float(value)


def gaussian_stats(features: Tensor, unbiased: bool = True) -> tuple[Tensor, Tensor]:
    """Mean (D) and covariance (D×D) of features N×D, in float64."""
    acc = GaussianAccumulator()
    acc.update(features)
    return acc.stats(unbiased=unbiased)


class GaussianAccumulator:
    """Streams N×D feature batches into float64 sums, so a set never has to fit in memory."""

    def __init__(self) -> None:
        self.count = 0
        self._sum: Tensor | None = None
        self._outer: Tensor | None = None

    def update(self, features: Tensor) -> None:
        """Add a batch of features N×D."""
        if features.ndim != 2:
            raise ValueError(f"expected features N×D, got shape {tuple(features.shape)}")
        x = features.detach().cpu().double()
        if self._sum is None:
            self._sum = torch.zeros(x.shape[1], dtype=torch.float64)
            self._outer = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64)
        elif x.shape[1] != self._sum.numel():
            raise ValueError(f"feature size changed from {self._sum.numel()} to {x.shape[1]}")
        self._sum += x.sum(0)
        self._outer += x.T @ x
        self.count += x.shape[0]

    def stats(self, unbiased: bool = True) -> tuple[Tensor, Tensor]:
        """Mean D and covariance D×D; ``unbiased`` divides by N-1 (numpy/torchmetrics) instead of N
        (StyleGAN-V's FeatureStats)."""
        if self.count < 2:
            raise ValueError(f"a covariance needs at least 2 samples, got {self.count}")
        mean = self._sum / self.count
        cov = self._outer - self.count * torch.outer(mean, mean)
        cov = cov / (self.count - 1 if unbiased else self.count)
        return mean, cov


def weighted_gaussian(features: Tensor, weights: Tensor, unbiased: bool = True) -> tuple[Tensor, Tensor]:
    """Mean D and covariance D×D of features N×D where row i counts ``weights[i]`` times (float64).

    With integer weights this equals :func:`gaussian_stats` of the rows repeated; used to bootstrap without
    materialising the resampled set.
    """
    x = features.double()
    w = weights.to(x.device, torch.float64)
    total = w.sum()
    if total < 2:
        raise ValueError(f"a covariance needs at least 2 samples, got {float(total):.0f}")
    mean = (w @ x) / total
    centred = x - mean
    cov = (centred * w[:, None]).T @ centred / (total - 1 if unbiased else total)
    return mean, cov
