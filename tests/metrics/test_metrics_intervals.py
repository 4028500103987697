"""Bootstrap intervals (contain the estimate, shrink with N, resample by video exactly) and KID (unbiased)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from medsora.metrics.base import VideoScore
from medsora.metrics.bootstrap import bootstrap_interval
from medsora.metrics.fid import FID
from medsora.metrics.frechet import gaussian_stats, weighted_gaussian
from medsora.metrics.kid import KID, kid_unbiased
from medsora.metrics.temporal_flickering import TemporalFlickering


def _gaussian_fid(n: int, seed: int, dim: int = 4, shift: float = 0.5, per_video: int = 1) -> FID:
    g = torch.Generator().manual_seed(seed)
    fid = FID(nn.Identity())
    for real in (True, False):
        for _ in range(n):
            fid.frames.sets.add(real, torch.randn(per_video, dim, generator=g) + (0 if real else shift))
    return fid


def _width(ci):
    return ci["high"] - ci["low"]


@pytest.mark.parametrize("kind", ["fid", "kid", "vbench"])
def test_intervals_contain_the_estimate_and_shrink_with_n(kind):
    widths = []
    for n in (40, 640):
        if kind == "vbench":
            metric = TemporalFlickering()
            rng = np.random.default_rng(n)
            metric.scores["fake"] = [VideoScore(float(v), 1) for v in rng.normal(0.9, 0.05, n)]
            point = metric.compute()["temporal_flickering"]
        else:
            fid = _gaussian_fid(n, seed=n)
            metric = fid if kind == "fid" else KID(fid.frames)
            point = metric.compute()[kind]
        ci = bootstrap_interval(metric, point, replicates=200, seed=0)
        assert ci["low"] <= point <= ci["high"], (n, point, ci)
        widths.append(_width(ci))
        again = bootstrap_interval(metric, point, replicates=200, seed=0)
        assert again["low"] == ci["low"]  # fixed seed, same interval
    assert widths[1] < 0.45 * widths[0]  # 16× the videos: about 1/4 of the width


def test_resampling_by_video_equals_the_repeated_set():
    """counts = how often each video was drawn; the statistic equals the metric of the materialised resample."""
    fid = _gaussian_fid(6, seed=1, per_video=3)
    kid = KID(fid.frames)
    counts = (np.array([0, 2, 1, 0, 3, 0]), np.array([1, 1, 0, 2, 0, 2]))
    rows = {}
    for i, real in enumerate((True, False)):
        x, g = fid.frames.sets.matrix(real)
        rows[real] = torch.cat([x[g == v] for v in range(6) for _ in range(counts[i][v])])
    assert kid.statistic(counts) == pytest.approx(kid_unbiased(rows[True], rows[False]), rel=1e-9)
    from medsora.metrics.frechet import frechet_distance

    want = frechet_distance(*gaussian_stats(rows[True]), *gaussian_stats(rows[False]))
    assert fid.statistic(counts) == pytest.approx(want, rel=1e-9)
    x, _ = fid.frames.sets.matrix(True)
    w = torch.rand(x.shape[0], dtype=torch.float64) * 3
    mean, cov = weighted_gaussian(x, w)
    assert mean.shape == (4,) and torch.allclose(cov, cov.T)


def test_kid_is_unbiased_on_two_samples_of_one_gaussian():
    g = torch.Generator().manual_seed(0)
    unbiased, biased = [], []
    for _ in range(300):
        x, y = torch.randn(20, 8, generator=g), torch.randn(20, 8, generator=g)
        unbiased.append(kid_unbiased(x, y))
        k = lambda a, b: (a.double() @ b.double().T / 8 + 1) ** 3  # noqa: E731
        biased.append(float(k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()))  # V-statistic
    u, b = np.array(unbiased), np.array(biased)
    se = u.std(ddof=1) / np.sqrt(u.size)
    assert abs(u.mean()) < 3 * se
    assert b.mean() > 10 * se  # the biased estimator is visibly positive at this N


def test_kid_matches_torchmetrics_on_equal_sizes():
    from torchmetrics.image.kid import poly_mmd

    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(50, 6, generator=g), torch.randn(50, 6, generator=g) + 0.3
    assert kid_unbiased(x, y) == pytest.approx(float(poly_mmd(x.double(), y.double(), degree=3, gamma=1 / 6,
                                                             coef=1.0)), rel=1e-9)


@pytest.mark.parametrize("unbiased", [True, False])
def test_low_rank_frechet_route_equals_the_covariance_route(unbiased):
    """Fewer videos than feature dimensions (FVD's usual case): the nuclear-norm form is the same distance."""
    from medsora.metrics.feature_sets import FeatureSets, frechet_of_sets
    from medsora.metrics.frechet import frechet_distance

    g = torch.Generator().manual_seed(0)
    xr, xf = torch.randn(30, 50, generator=g), torch.randn(20, 50, generator=g) + 0.3
    sets = FeatureSets()
    for real, x in ((True, xr), (False, xf)):
        for row in x:
            sets.add(real, row[None])
    want = frechet_distance(*gaussian_stats(xr, unbiased), *gaussian_stats(xf, unbiased))
    assert frechet_of_sets(sets, unbiased=unbiased) == pytest.approx(want, rel=1e-9)
    same = FeatureSets()
    for row in xr:
        same.add(True, row[None])
        same.add(False, row[None])
    assert abs(frechet_of_sets(same, unbiased=unbiased)) < 1e-9
