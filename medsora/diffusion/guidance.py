"""Classifier-free guidance (Ho & Salimans, 2022) for a denoiser with optional learned sigma."""
from __future__ import annotations

from typing import Callable, Mapping

import torch
from torch import Tensor

__all__ = ["Denoiser", "guided_prediction"]

Denoiser = Callable[..., Tensor]
"""``denoiser(x: B×C×T×H×W, t: B, **cond) -> B×C'×T×H×W`` (C' = C, or 2C with learned sigma)."""


def _cat(a, b):
    if isinstance(a, Tensor):
        return torch.cat([a, b], dim=0)
    if a is None and b is None:
        return None
    raise TypeError("conditioning values must be tensors with a batch dimension, or None in both branches")


def guided_prediction(denoiser: Denoiser, x: Tensor, t: Tensor, channels: int,
                      cond: Mapping[str, Tensor | None] | None = None,
                      uncond: Mapping[str, Tensor | None] | None = None,
                      scale: float = 1.0,
                      both: Mapping[str, Tensor | None] | None = None) -> Tensor:
    """One denoiser evaluation with guidance ``uncond + scale · (cond − uncond)``.

    Scale 1 (or no ``uncond``) returns the conditional prediction itself in a single pass.
    Only the first ``channels`` (the ε/v prediction) are guided; learned-variance channels come
    from the conditional branch, as in DiT.

    Args:
        denoiser: the model, see :data:`Denoiser`.
        x: B×C×T×H×W; t: B.
        channels: C, the latent channel count.
        cond / uncond: keyword arguments of the conditional and the null-condition calls (same
            keys, tensors with batch dimension B).
        scale: the guidance scale.
        both: keyword arguments for the stacked batch [cond; uncond] when plain concatenation
            does not fit (e.g. text tokens of different lengths: ``Condition.cat``).
    Returns:
        B×C'×T×H×W.
    """
    cond = dict(cond or {})
    if uncond is None or scale == 1.0:
        return denoiser(x, t, **cond)
    if both is None:
        if set(uncond) != set(cond):
            raise ValueError(f"cond keys {sorted(cond)} and uncond keys {sorted(uncond)} differ")
        both = {k: _cat(cond[k], uncond[k]) for k in cond}
    out = denoiser(torch.cat([x, x]), torch.cat([t, t]), **both)
    out_c, out_u = out.chunk(2, dim=0)
    guided = out_u[:, :channels] + scale * (out_c[:, :channels] - out_u[:, :channels])
    return torch.cat([guided, out_c[:, channels:]], dim=1)
