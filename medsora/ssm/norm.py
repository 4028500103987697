"""Gated RMSNorm of the Mamba layers (``mamba_ssm``'s ``RMSNormGated`` with ``norm_before_gate=False``).

``mamba_ssm`` fuses it into one Triton kernel. In plain PyTorch the composite saves five
layer-wide intermediates for backward (y, silu(z), the product, the normalised product, the
scaled output); :class:`_GatedRMSNorm` saves only y, z and one reciprocal RMS per group, and
recomputes the rest in backward: about 4·d fewer floats per token of activation memory in every
Mamba layer, for a few elementwise passes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def rms_norm_gated_ref(y: torch.Tensor, z: torch.Tensor, weight: torch.Tensor, group_size: int,
                       eps: float, norm_before_gate: bool = False) -> torch.Tensor:
    """The composite definition (autograd through every op): the ground truth for tests, and the
    ``norm_before_gate`` variant (``rmsnorm(y)·weight·silu(z)``), which MedSora does not use."""
    acc = _acc(y)
    h = y.to(acc) if norm_before_gate else y.to(acc) * F.silu(z.to(acc))
    g = h.unflatten(-1, (-1, group_size))
    g = g * torch.rsqrt(g.pow(2).mean(-1, keepdim=True) + eps)
    out = g.flatten(-2) * weight.to(acc)
    if norm_before_gate:
        out = out * F.silu(z.to(acc))
    return out.to(y.dtype)


def _acc(y: torch.Tensor) -> torch.dtype:
    """fp32 inside, fp64 stays fp64."""
    return torch.float64 if y.dtype == torch.float64 else torch.float32


class _GatedRMSNorm(torch.autograd.Function):
    """``rmsnorm(y · silu(z)) · weight`` per group of channels, fp32 inside (fp64 stays), hand-written backward."""

    @staticmethod
    def forward(ctx, y, z, weight, group_size, eps):
        acc = _acc(y)
        if y.is_cuda or torch.compiler.is_compiling() or y.dim() < 2 or y.dtype != acc:
            h = (y.to(acc) * F.silu(z.to(acc))).unflatten(-1, (-1, group_size))
            rstd = torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
            out = (h * rstd).flatten(-2) * weight.to(acc)
        else:
            out, rstd = _forward_blocks(y, z, weight.to(acc), group_size, eps)
        ctx.save_for_backward(y, z, weight, rstd)
        ctx.group_size = group_size
        return out.to(y.dtype)

    @staticmethod
    def backward(ctx, grad):
        y, z, weight, rstd = ctx.saved_tensors
        acc, gs = rstd.dtype, ctx.group_size
        yf, zf, g = y.to(acc), z.to(acc), grad.to(acc)
        # In place where a temporary is dead: each fresh layer-wide buffer costs page faults on the CPU.
        s = F.silu(zf)
        n = (yf * s).unflatten(-1, (-1, gs)).mul_(rstd)  # normalised
        dweight = (g * n.flatten(-2)).reshape(-1, g.shape[-1]).sum(0)
        gw = (g * weight.to(acc)).unflatten(-1, (-1, gs))
        dot = (gw * n).mean(-1, keepdim=True)
        dh = gw.sub_(n.mul_(dot)).mul_(rstd).flatten(-2)
        dy = dh * s
        dz = torch.ops.aten.silu_backward(dh.mul_(yf), zf)  # (dh·y)·silu'(z), one fused pass
        return dy.to(y.dtype), dz.to(z.dtype), dweight.to(weight.dtype), None, None


# Elements of one block of the CPU forward (1 MiB in fp32): its few passes then run on data in cache.
_BLOCK_ELEMS = 1 << 18


def _forward_blocks(y, z, weight, group_size, eps):
    """The forward on the CPU (y in fp32 or fp64), in blocks of rows of about ``_BLOCK_ELEMS`` elements: the
    same ops per element as the whole-tensor form, each block's passes in cache."""
    d = y.shape[-1]
    y2, z2 = y.reshape(-1, d), z.reshape(-1, d)  # views for the layers' inputs
    out = torch.empty(y2.shape, dtype=y.dtype, device=y.device)
    rstd = torch.empty(y2.shape[0], d // group_size, 1, dtype=y.dtype, device=y.device)
    rows = max(1, _BLOCK_ELEMS // d)
    for r0 in range(0, y2.shape[0], rows):
        r1 = min(y2.shape[0], r0 + rows)
        h = torch.mul(y2[r0:r1], F.silu(z2[r0:r1].to(y.dtype))).unflatten(-1, (-1, group_size))
        torch.rsqrt(h.pow(2).mean(-1, keepdim=True).add_(eps), out=rstd[r0:r1])
        torch.mul(h, rstd[r0:r1], out=out[r0:r1].unflatten(-1, (-1, group_size)))
        out[r0:r1].mul_(weight)
    return out.view(y.shape), rstd.view(*y.shape[:-1], d // group_size, 1)


class RMSNormGated(nn.Module):
    """``rmsnorm(y · silu(z)) · weight`` (or ``rmsnorm(y) · weight · silu(z)`` with ``norm_before_gate``),
    normalised over groups of ``group_size`` channels, in fp32.

    y, z: ...×d -> ...×d (dtype of y).
    """

    def __init__(self, d: int, eps: float = 1e-5, group_size: int | None = None, norm_before_gate: bool = False,
                 device=None, dtype=None):
        super().__init__()
        group_size = d if group_size is None else group_size
        if d % group_size:
            raise ValueError(f"RMSNormGated: d={d} must be a multiple of group_size={group_size}")
        self.eps, self.group_size, self.norm_before_gate = eps, group_size, norm_before_gate
        self.weight = nn.Parameter(torch.ones(d, device=device, dtype=dtype))

    def forward(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if self.norm_before_gate:
            return rms_norm_gated_ref(y, z, self.weight, self.group_size, self.eps, norm_before_gate=True)
        return _GatedRMSNorm.apply(y, z, self.weight, self.group_size, self.eps)
