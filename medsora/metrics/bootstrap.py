"""Bootstrap confidence intervals of set metrics, resampling whole videos with a fixed seed.

A metric that supports intervals implements :class:`Resamplable`: it reports how many
videos each of its sets holds and evaluates its statistic for given per-video
multiplicities (``counts[v]`` = how often video ``v`` was drawn; ones = the point
estimate). Every frame or clip of a drawn video comes with it, so FID over frames is
resampled by video as FVD is.

Interval: the bootstrap percentile interval *re-centred on the point estimate*
(``[θ − (m − q_lo), θ + (q_hi − m)]`` with ``m`` the bootstrap mean). Fréchet distances
and KID are biased upward under resampling with replacement (duplicated videos shrink
the covariance's rank and add their own variance to the mean term), so the plain
percentile interval can sit wholly above the number it is meant to bracket; re-centring
keeps the bootstrap's spread and skew and removes that resampling bias. The raw
percentiles and the bootstrap mean are reported beside it.
"""
from __future__ import annotations

import abc
import math

import numpy as np
from tqdm import tqdm

__all__ = ["Resamplable", "bootstrap_interval", "interval_of"]


class Resamplable(abc.ABC):
    """A metric whose value is a function of per-video multiplicities of its sets."""

    @abc.abstractmethod
    def set_sizes(self) -> tuple[int, ...]:
        """Number of videos in each resampled set (e.g. ``(real, generated)``)."""

    @abc.abstractmethod
    def statistic(self, counts: tuple[np.ndarray, ...]) -> float:
        """The metric's value when video ``v`` of set ``s`` counts ``counts[s][v]`` times (int arrays)."""


def interval_of(point: float, replicates: np.ndarray, confidence: float) -> dict:
    """The re-centred percentile interval (see the module docstring) of bootstrap ``replicates`` around ``point``."""
    values = replicates[np.isfinite(replicates)]
    if values.size < 2:
        return {"low": None, "high": None, "confidence": confidence, "replicates": int(values.size)}
    alpha = (1 - confidence) / 2
    q_lo, q_hi = np.quantile(values, [alpha, 1 - alpha])
    mean = float(values.mean())
    return {"low": point - (mean - float(q_lo)), "high": point + (float(q_hi) - mean), "confidence": confidence,
            "replicates": int(values.size), "percentile_low": float(q_lo), "percentile_high": float(q_hi),
            "bootstrap_mean": mean, "bootstrap_std": float(values.std(ddof=1))}


def bootstrap_interval(metric: Resamplable, point: float, replicates: int = 1000, confidence: float = 0.95,
                       seed: int = 0, progress: bool = False, desc: str = "bootstrap") -> dict:
    """Resample every set of ``metric`` with replacement (its own size, by video) ``replicates`` times.

    Returns ``{low, high, confidence, replicates, percentile_low, percentile_high, bootstrap_mean,
    bootstrap_std, method}``; the same ``seed`` gives the same interval.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    sizes = metric.set_sizes()
    rng = np.random.default_rng(seed)
    values = np.empty(replicates)
    for r in tqdm(range(replicates), desc=desc, disable=not progress, leave=False):
        counts = tuple(np.bincount(rng.integers(0, n, n), minlength=n) for n in sizes)
        try:
            values[r] = metric.statistic(counts)
        except ValueError:  # e.g. a resample with fewer than 2 distinct videos
            values[r] = math.nan
    out = interval_of(point, values, confidence)
    out["method"] = (f"{replicates} bootstrap resamples of the videos (seed {seed}), percentile interval re-centred "
                     f"on the estimate")
    return out
