"""Statistics of a reader study: binomial intervals, score summaries, Cohen's and Fleiss' κ.

Intervals come from scipy (``binomtest(...).proportion_ci``, Wilson's score interval by default:
close to nominal coverage for the small n of a reader study, where the Wald interval is not;
Clopper–Pearson with ``method="exact"``). The κ statistics are written out here because they are
a few lines each and the alternatives (statsmodels, scikit-learn) would be a heavy dependency for
them; the tests check both against published worked examples.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Hashable, Optional, Sequence

import numpy as np
from scipy import stats

__all__ = ["proportion", "score_summary", "compare_scores", "cohen_kappa", "fleiss_kappa", "mean_interval"]


def proportion(k: int, n: int, level: float = 0.95, method: str = "wilson") -> Optional[dict]:
    """``{"k", "n", "value", "ci": [low, high]}`` for ``k`` successes of ``n``; None when ``n`` is 0."""
    if n == 0:
        return None
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method=method)
    return {"k": int(k), "n": int(n), "value": k / n, "ci": [float(ci.low), float(ci.high)]}


def mean_interval(values: Sequence[float], level: float = 0.95) -> Optional[dict]:
    """Mean with a Student-t interval (``ci`` None for fewer than two values)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return None
    out = {"n": int(x.size), "value": float(x.mean()), "ci": None}
    if x.size >= 2:
        half = stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
        out["ci"] = [float(x.mean() - half), float(x.mean() + half)]
    return out


def score_summary(scores: Sequence[float], level: float = 0.95) -> Optional[dict]:
    """n, mean (t interval), sd, median of ordinal scores; None when empty."""
    if not len(scores):
        return None
    x = np.asarray(scores, dtype=float)
    summary = mean_interval(x, level)
    summary.update(sd=float(x.std(ddof=1)) if x.size >= 2 else None, median=float(np.median(x)))
    return summary


def compare_scores(real: Sequence[float], generated: Sequence[float], level: float = 0.95) -> dict:
    """Scores of real vs generated clips: both summaries, the mean difference and a Mann–Whitney U test.

    Mann–Whitney because the scores are ordinal; the p-value treats answers as independent (answers
    of one reader to many clips are not, so read it as descriptive).
    """
    out = {"real": score_summary(real, level), "generated": score_summary(generated, level),
           "difference": None, "mannwhitney_p": None}
    if len(real) and len(generated):
        out["difference"] = float(np.mean(real) - np.mean(generated))
        if len(set(real) | set(generated)) > 1:
            out["mannwhitney_p"] = float(stats.mannwhitneyu(real, generated, alternative="two-sided").pvalue)
    return out


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> Optional[float]:
    """Cohen's κ of two raters' labels of the same items (None if undefined: no items, or p_e = 1).

    κ = (p_o − p_e) / (1 − p_e), p_o the observed agreement, p_e = Σ_c p_a(c) p_b(c) (Cohen 1960).
    """
    if len(a) != len(b):
        raise ValueError(f"two raters must label the same items, got {len(a)} and {len(b)} labels")
    n = len(a)
    if n == 0:
        return None
    p_o = sum(x == y for x, y in zip(a, b)) / n
    ca, cb = Counter(a), Counter(b)
    p_e = sum(ca[c] * cb[c] for c in set(ca) | set(cb)) / n ** 2
    return None if p_e == 1 else (p_o - p_e) / (1 - p_e)


def fleiss_kappa(table: np.ndarray | Sequence[Sequence[int]]) -> Optional[float]:
    """Fleiss' κ from an items × categories table of counts (every item rated by the same number of raters).

    P_i = (Σ_j n_ij² − m) / (m(m − 1)), P̄ the mean of P_i, p_j the category shares,
    P̄_e = Σ_j p_j², κ = (P̄ − P̄_e) / (1 − P̄_e) (Fleiss 1971). None if undefined.
    """
    t = np.asarray(table, dtype=float)
    if t.ndim != 2 or t.shape[0] == 0:
        return None
    m = t.sum(axis=1)
    if not np.allclose(m, m[0]) or m[0] < 2:
        raise ValueError(f"Fleiss' κ needs the same number (>= 2) of ratings for every item, got {sorted(set(m))}")
    m = m[0]
    p_i = ((t ** 2).sum(axis=1) - m) / (m * (m - 1))
    p_j = t.sum(axis=0) / t.sum()
    p_e = float((p_j ** 2).sum())
    return None if p_e == 1 else float((p_i.mean() - p_e) / (1 - p_e))
