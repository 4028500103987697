"""Fréchet distance: closed forms, agreement with scipy where it is well conditioned, stability where not."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from medsora.metrics.frechet import GaussianAccumulator, frechet_distance, gaussian_stats, sqrtm_psd


def _spd(d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return a @ a.T + 0.1 * torch.eye(d, dtype=torch.float64)


def test_commuting_covariances_closed_form():
    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    a, b = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 1.0, 1.0])
    expected = 1 + 0 + 4 + float((a + b - 2 * (a * b).sqrt()).sum())  # sum (sqrt(a) - sqrt(b))^2 per axis
    assert frechet_distance(mu1, torch.diag(a), mu2, torch.diag(b)) == pytest.approx(expected, abs=1e-12)


def test_non_commuting_2x2_closed_form():
    # For 2×2 PSD matrices tr((S1 S2)^(1/2)) = sqrt(tr(S1 S2) + 2 sqrt(det S1 det S2)).
    s1 = torch.tensor([[2.0, 0.9], [0.9, 1.0]], dtype=torch.float64)
    s2 = torch.tensor([[1.0, -0.7], [-0.7, 3.0]], dtype=torch.float64)
    assert not torch.allclose(s1 @ s2, s2 @ s1)
    mu1, mu2 = torch.tensor([0.5, -1.0]), torch.tensor([-0.5, 2.0])
    tr_sqrt = math.sqrt(float(torch.trace(s1 @ s2)) + 2 * math.sqrt(float(torch.det(s1) * torch.det(s2))))
    expected = float((mu1 - mu2).double().square().sum() + s1.trace() + s2.trace()) - 2 * tr_sqrt
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, abs=1e-12)


def test_one_dimensional_is_squared_wasserstein():
    # N(m1, s1^2) vs N(m2, s2^2): (m1 - m2)^2 + (s1 - s2)^2.
    fd = frechet_distance(torch.tensor([1.0]), torch.tensor([[4.0]]), torch.tensor([3.0]), torch.tensor([[9.0]]))
    assert fd == pytest.approx(4.0 + 1.0, abs=1e-12)


def test_matches_scipy_sqrtm_when_well_conditioned():
    s1, s2 = _spd(12, 1), _spd(12, 2)
    mu1, mu2 = torch.randn(12, dtype=torch.float64), torch.randn(12, dtype=torch.float64)
    covmean = scipy.linalg.sqrtm(s1.numpy() @ s2.numpy()).real
    diff = (mu1 - mu2).numpy()
    reference = diff @ diff + np.trace(s1.numpy()) + np.trace(s2.numpy()) - 2 * np.trace(covmean)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(reference, rel=1e-9)


def test_rank_deficient_set_against_itself_is_zero():
    # 20 samples of 64-d features: singular covariances, the FVD regime (400-d, few videos).
    feats = torch.randn(20, 64, dtype=torch.float64) * torch.linspace(0.1, 10, 64, dtype=torch.float64)
    mu, sigma = gaussian_stats(feats)
    assert torch.linalg.matrix_rank(sigma) < 64
    fd = frechet_distance(mu, sigma, mu, sigma)
    assert math.isfinite(fd) and abs(fd) < 1e-8 * float(sigma.trace())
    # And a shifted copy is exactly the squared shift away.
    assert frechet_distance(mu, sigma, mu + 0.5, sigma) == pytest.approx(64 * 0.25, rel=1e-6)


def test_sqrtm_psd_squares_back():
    s = _spd(8, 3)
    root = sqrtm_psd(s)
    torch.testing.assert_close(root @ root, s, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(root, root.T)


def test_accumulator_matches_torch_cov_in_batches():
    feats = torch.randn(50, 7, dtype=torch.float64)
    acc = GaussianAccumulator()
    for chunk in feats.split(13):
        acc.update(chunk)
    mean, cov = acc.stats(unbiased=True)
    torch.testing.assert_close(mean, feats.mean(0))
    torch.testing.assert_close(cov, torch.cov(feats.T))
    _, biased = acc.stats(unbiased=False)
    torch.testing.assert_close(biased, torch.cov(feats.T, correction=0))


def test_shape_errors_are_explained():
    with pytest.raises(ValueError, match="D×D"):
        frechet_distance(torch.zeros(3), torch.eye(3), torch.zeros(2), torch.eye(2))
    with pytest.raises(ValueError, match="at least 2 samples"):
        GaussianAccumulator().stats()
