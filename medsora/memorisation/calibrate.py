"""The copy threshold, calibrated on real held-out clips, and the flagged fraction with a bootstrap interval.

Held-out clips are real videos the model never saw; their distances to the nearest
training clip show how close two *different* real clips of this data set come. A sample
nearer to a training clip than the ``quantile`` (1st percentile by default) of those
distances is closer than 99 % of unseen real clips get: it is flagged as a likely copy.
"""
from __future__ import annotations

import numpy as np

from medsora.metrics.bootstrap import interval_of

__all__ = ["flag_fraction", "threshold_from_held_out"]


def threshold_from_held_out(distances: np.ndarray, quantile: float = 0.01) -> float:
    """The ``quantile`` of held-out→train nearest-neighbour distances (linear interpolation)."""
    d = np.asarray(distances, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0:
        raise ValueError("no held-out clip could be compared with the training set: the copy threshold needs real "
                         "held-out clips (a manifest val/test split, an encode cache's val split, or --held-out DIR)")
    if not 0 <= quantile < 1:
        raise ValueError(f"--quantile {quantile} must be in [0, 1)")
    return float(np.quantile(d, quantile))


def flag_fraction(flagged: np.ndarray, replicates: int = 1000, confidence: float = 0.95, seed: int = 0) -> dict:
    """Fraction of flagged samples and its bootstrap interval (samples resampled with replacement)."""
    f = np.asarray(flagged, dtype=np.float64)
    point = float(f.mean()) if f.size else float("nan")
    rng = np.random.default_rng(seed)
    reps = np.array([f[rng.integers(0, f.size, f.size)].mean() for _ in range(replicates)]) if f.size else np.array([])
    out = interval_of(point, reps, confidence)
    if out["low"] is not None:  # a fraction: keep the re-centred interval inside [0, 1]
        out["low"], out["high"] = max(0.0, out["low"]), min(1.0, out["high"])
    out["method"] = f"{replicates} bootstrap resamples of the samples (seed {seed})"
    return {"fraction": point, "count": int(f.sum()), "total": int(f.size), "interval": out}
