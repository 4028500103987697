"""Kernel Inception Distance: the unbiased MMD² between real and generated frame features.

KID (Bińkowski et al. 2018, "Demystifying MMD GANs") uses the cubic polynomial kernel
``k(x, y) = (xᵀy / d + 1)³`` on the same InceptionV3 pool features as FID, and the
*unbiased* estimator of the squared maximum mean discrepancy, so its expectation is 0
when both sets come from one distribution at any N (FID is biased upward at small N).
torchmetrics and clean-fid average the estimator over random subsets of 1000 features;
here it is the full U-statistic over every frame (the same expectation, lower
variance, no subset seed). Kernel sums are accumulated per pair of videos, so the value
can be bootstrapped by video exactly (a video drawn k times weighs its frames by k).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from medsora.metrics.base import DistributionMetric
from medsora.metrics.bootstrap import Resamplable
from medsora.metrics.frame_features import FrameFeatures

__all__ = ["KID", "kid_unbiased", "polynomial_kernel"]


def polynomial_kernel(x: Tensor, y: Tensor) -> Tensor:
    """``(x yᵀ / d + 1)³`` for x N×D, y M×D -> N×M (float64)."""
    return (x.double() @ y.double().T / x.shape[1] + 1) ** 3


def _group_sums(x: Tensor, gx: Tensor, nx: int, y: Tensor, gy: Tensor, ny: int, chunk: int = 2048) -> Tensor:
    """``S[u, v] = Σ_{i ∈ u, j ∈ v} k(x_i, y_j)`` for videos u of x and v of y -> nx×ny (float64)."""
    onehot_y = torch.zeros(y.shape[0], ny, dtype=torch.float64)
    onehot_y[torch.arange(y.shape[0]), gy] = 1
    sums = torch.zeros(nx, ny, dtype=torch.float64)
    for start in range(0, x.shape[0], chunk):
        block = polynomial_kernel(x[start:start + chunk], y) @ onehot_y
        sums.index_add_(0, gx[start:start + chunk], block)
    return sums


def kid_unbiased(x: Tensor, y: Tensor) -> float:
    """Unbiased MMD² of feature sets x N×D and y M×D under :func:`polynomial_kernel` (each row its own group)."""
    kid = KID.__new__(KID)
    kid._prepare_from(x, torch.arange(x.shape[0]), y, torch.arange(y.shape[0]))
    return kid.statistic(None)


class KID(DistributionMetric, Resamplable):
    """KID between real and generated frames; ``feature`` as for :class:`~medsora.metrics.fid.FID`."""

    name = "kid"
    higher_is_better = False

    def __init__(self, feature: nn.Module | FrameFeatures, max_frames: int = 16, batch_size: int = 32,
                 device: str | torch.device = "cpu") -> None:
        self.frames = FrameFeatures.of(feature, max_frames, batch_size, device)
        self.protocol = (self.frames.protocol() + ", 2048-d pool features, cubic polynomial kernel, unbiased MMD² "
                         "over all frames (no subsets)")
        self._sums: dict | None = None

    def update(self, video: Tensor, meta: dict, real: bool) -> None:
        self.frames.add(video, real)
        self._sums = None

    def _prepare_from(self, xr: Tensor, gr: Tensor, xf: Tensor, gf: Tensor) -> None:
        nr, nf = int(gr.max()) + 1, int(gf.max()) + 1
        diag = lambda x, g, n: torch.zeros(n, dtype=torch.float64).index_add_(  # noqa: E731
            0, g, ((x.double().square().sum(1) / x.shape[1] + 1) ** 3))
        rows = lambda g, n: torch.bincount(g, minlength=n).double()  # noqa: E731
        self._sums = {"rr": _group_sums(xr, gr, nr, xr, gr, nr), "ff": _group_sums(xf, gf, nf, xf, gf, nf),
                      "rf": _group_sums(xr, gr, nr, xf, gf, nf), "dr": diag(xr, gr, nr), "df": diag(xf, gf, nf),
                      "nr": rows(gr, nr), "nf": rows(gf, nf)}

    def _prepare(self) -> dict:
        if self._sums is None:
            sets = self.frames.sets
            self._prepare_from(*sets.matrix(True), *sets.matrix(False))
        return self._sums

    def set_sizes(self) -> tuple[int, int]:
        return self.frames.sets.num_videos(True), self.frames.sets.num_videos(False)

    def statistic(self, counts) -> float:
        s = self._prepare()
        cr = torch.ones_like(s["nr"]) if counts is None else torch.as_tensor(counts[0], dtype=torch.float64)
        cf = torch.ones_like(s["nf"]) if counts is None else torch.as_tensor(counts[1], dtype=torch.float64)
        wr, wf = float(cr @ s["nr"]), float(cf @ s["nf"])
        if wr < 2 or wf < 2:
            raise ValueError(f"KID needs at least 2 real and 2 generated frames, got {wr:.0f} and {wf:.0f}")
        within_r = (cr @ s["rr"] @ cr - cr @ s["dr"]) / (wr * (wr - 1))
        within_f = (cf @ s["ff"] @ cf - cf @ s["df"]) / (wf * (wf - 1))
        across = (cr @ s["rf"] @ cf) / (wr * wf)
        return float(within_r + within_f - 2 * across)

    def compute(self) -> dict[str, float]:
        sets = self.frames.sets
        n_real, n_fake = sets.num_rows(True), sets.num_rows(False)
        if n_real < 2 or n_fake < 2:
            raise ValueError(f"KID needs at least 2 real and 2 generated frames, got {n_real} and {n_fake}")
        return {"kid": self.statistic(None), "kid_frames_real": n_real, "kid_frames_fake": n_fake}
