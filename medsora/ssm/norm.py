"""Gated RMSNorm of the Mamba layers (``mamba_ssm``'s ``RMSNormGated`` with ``norm_before_gate=False``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RMSNormGated(nn.Module):
    """``rmsnorm(y · silu(z)) · weight``, normalised over groups of ``group_size`` channels, in fp32.

    y, z: ...×d -> ...×d (dtype of y).
    """

    def __init__(self, d: int, eps: float = 1e-5, group_size: int | None = None):
        super().__init__()
        group_size = d if group_size is None else group_size
        if d % group_size:
            raise ValueError(f"RMSNormGated: d={d} must be a multiple of group_size={group_size}")
        self.eps, self.group_size = eps, group_size
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        h = y.float() * F.silu(z.float())
        g = h.unflatten(-1, (-1, self.group_size))
        g = g * torch.rsqrt(g.pow(2).mean(-1, keepdim=True) + self.eps)
        return (g.flatten(-2) * self.weight.float()).to(y.dtype)
