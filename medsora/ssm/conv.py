"""Depthwise causal conv1d of the Mamba layers, with a carried state and packed sequences."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from medsora.ssm import kernels


class _CausalConvSiLU(torch.autograd.Function):
    """``silu(bias + Σ_j weight[:, j] · x[t - (k-1) + j])``, channels last: x: b×l×c (any strides), weight: c×k,
    bias: c or None -> b×l×c in x's dtype (computed in the promoted dtype of x and weight).

    The k taps are k shifted multiply-adds; the backward recomputes the pre-activation from x and
    reduces the weight gradient over (b, l) per tap. Why not ``F.conv1d``: on the CPU its depthwise
    backward (mkldnn) costs 2–3× this for MedSora's spatial scans and about 3× for its temporal scans
    (many sequences of a few frames), and it wants channels-first input, i.e. a copy of the in_proj slice.
    Only the input is saved: the pre-activation and the output are recomputed.
    """

    @staticmethod
    def _pre(x, weight, bias):
        k, l = weight.shape[1], x.shape[1]
        pre = x * weight[:, k - 1]
        if bias is not None:
            pre += bias
        for s in range(1, min(k, l)):
            pre[:, s:].addcmul_(x[:, :-s], weight[:, k - 1 - s])
        return pre

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight, bias)
        return F.silu(_CausalConvSiLU._pre(x, weight, bias)).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        x, weight, bias = ctx.saved_tensors
        k, l = weight.shape[1], x.shape[1]
        dpre = torch.ops.aten.silu_backward(grad, _CausalConvSiLU._pre(x, weight, bias))  # one fused pass
        dw = torch.zeros_like(weight)
        dw[:, k - 1] = (dpre * x).sum((0, 1))
        dx = dpre * weight[:, k - 1]
        for s in range(1, min(k, l)):
            dw[:, k - 1 - s] = (dpre[:, s:] * x[:, :-s]).sum((0, 1))
            dx[:, :-s].addcmul_(dpre[:, s:], weight[:, k - 1 - s])
        db = dpre.sum((0, 1)).to(bias.dtype) if bias is not None else None
        return dx.to(x.dtype), dw, db


class CausalDepthwiseConv1d(nn.Conv1d):
    """Depthwise conv over time that only looks back, followed by SiLU (x: b×c×l -> b×c×l).

    Parameters are laid out as ``mamba_ssm``'s ``conv1d`` (weight c×1×k, bias c) so checkpoints are
    interchangeable. ``state`` (b×c×k, ``mamba_ssm``'s conv state: the last k inputs, oldest first)
    replaces the zero left padding, so a sequence can be processed in pieces; ``seq_idx`` (b×l)
    keeps packed sequences apart (no tap reaches into the previous sequence). Uses the
    ``causal_conv1d`` CUDA kernel when ``use_kernel`` (the layer's scan path is ``cuda``), it imports,
    ``x`` is on CUDA and no state is carried; shifted multiply-adds (:class:`_CausalConvSiLU`) when
    neither a state nor ``seq_idx`` is given; ``F.conv1d`` or masked taps otherwise.
    """

    def __init__(self, channels: int, kernel_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__(channels, channels, kernel_size, groups=channels, padding=0, bias=bias, device=device,
                         dtype=dtype)

    def forward(self, x: torch.Tensor, use_kernel: bool = False, state: Optional[torch.Tensor] = None,
                seq_idx: Optional[torch.Tensor] = None) -> torch.Tensor:
        k = self.kernel_size[0]
        if use_kernel and state is None and kernels.HAS_CAUSAL_CONV1D and x.is_cuda:  # pragma: no cover - CUDA
            return kernels.causal_conv1d_fn(x, self.weight.squeeze(1), self.bias, seq_idx=seq_idx, activation="silu")
        if state is None and seq_idx is None:
            return _CausalConvSiLU.apply(x.transpose(1, 2), self.weight[:, 0], self.bias).transpose(1, 2)
        past = F.pad(x, (k - 1, 0)) if state is None else torch.cat([state[..., 1:].to(x.dtype), x], -1)
        if seq_idx is None:
            return F.silu(F.conv1d(past, self.weight, self.bias, groups=self.in_channels))
        # Tap j looks j steps back; it only counts when that step is in the same sequence.
        l = x.shape[-1]
        seq = torch.cat([seq_idx[:, :1].expand(-1, k - 1), seq_idx], 1)  # the carried state belongs to sequence 1
        w = self.weight[:, 0]  # c×k, tap k-1 is the current step
        out = past[..., k - 1:] * w[:, k - 1, None]
        for j in range(1, k):
            same = (seq[:, k - 1 - j:k - 1 - j + l] == seq_idx)[:, None]
            out = out + past[..., k - 1 - j:k - 1 - j + l] * w[:, k - 1 - j, None] * same
        if self.bias is not None:
            out = out + self.bias[:, None]
        return F.silu(out)

    def step(self, x: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """One step: x: b×c, state: b×c×k updated in place (shifted, x appended) -> silu(conv) b×c."""
        state.copy_(torch.roll(state, shifts=-1, dims=-1))
        state[:, :, -1] = x
        out = (state * self.weight[:, 0]).sum(-1)
        if self.bias is not None:
            out = out + self.bias
        return F.silu(out).to(x.dtype)


def next_conv_state(state: Optional[torch.Tensor], x: torch.Tensor, k: int) -> torch.Tensor:
    """The conv state after inputs ``x`` (b×c×l): the last k inputs, older ones from ``state`` or zeros."""
    past = F.pad(x, (k, 0)) if state is None else torch.cat([state.to(x.dtype), x], -1)
    return past[..., -k:]
