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

    On the CPU both passes walk the tensor in blocks of about ``_BLOCK_ELEMS`` elements (whole sequences,
    or stretches of one long sequence), so the k multiply-adds, the SiLU and the reductions of a block
    run on data in cache: 3–5× faster than whole-tensor passes at MedSora's sizes (benchmarks/RESULTS.md).
    Each output and input-gradient element sums the same terms in the same order as without blocks (up to
    the rounding of a multiply-add, which vectorised loops and their scalar tails may fuse differently); the
    weight and bias gradients are sums of per-block partial sums. A given shape always takes the same blocks,
    so results are deterministic (the recomputed forward equals the first).
    """

    @staticmethod
    def _pre(x, weight, bias):
        """The whole pre-activation in plain ops (CUDA, ``torch.compile``)."""
        k, l = weight.shape[1], x.shape[1]
        pre = x * weight[:, k - 1]
        if bias is not None:
            pre = pre + bias
        for s in range(1, min(k, l)):
            pre[:, s:].addcmul_(x[:, :-s], weight[:, k - 1 - s])
        return pre

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight, bias)
        if _one_block(x):
            return F.silu(_CausalConvSiLU._pre(x, weight, bias)).to(x.dtype)
        acc = torch.promote_types(x.dtype, weight.dtype)
        out = x.new_empty(x.shape)
        pre = out if acc == x.dtype else None
        taps = weight.t().contiguous()  # k×c: each tap's weights contiguous (a strided column broadcasts slowly)
        for rows, t0, t1 in _blocks(x, weight):
            p = _pre_into(pre[rows, t0:t1] if pre is not None else None, x, taps, bias, rows, t0, t1, acc)
            if pre is not None:
                F.silu(p, inplace=True)
            else:
                out[rows, t0:t1] = F.silu(p)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight, bias = ctx.saved_tensors
        k, l = weight.shape[1], x.shape[1]
        if _one_block(x):
            dpre = torch.ops.aten.silu_backward(grad, _CausalConvSiLU._pre(x, weight, bias))  # one fused pass
            dw = torch.zeros_like(weight)
            dw[:, k - 1] = (dpre * x).sum((0, 1))
            dx = dpre * weight[:, k - 1]
            for s in range(1, min(k, l)):
                dw[:, k - 1 - s] = (dpre[:, s:] * x[:, :-s]).sum((0, 1))
                dx[:, :-s].addcmul_(dpre[:, s:], weight[:, k - 1 - s])
            db = dpre.sum((0, 1)).to(bias.dtype) if bias is not None else None
            return dx.to(x.dtype), dw, db
        acc = torch.promote_types(x.dtype, weight.dtype)
        dx = torch.empty(x.shape, dtype=acc, device=x.device)
        dw = torch.zeros(weight.shape, dtype=acc, device=x.device)
        db = torch.zeros(weight.shape[0], dtype=acc, device=x.device) if bias is not None else None
        taps = weight.t().contiguous()
        for rows, t0, t1 in _blocks(x, weight):
            xr, dxr = x[rows], dx[rows]
            pre = _pre_into(None, x, taps, bias, rows, t0, t1, acc)
            dpre = torch.ops.aten.silu_backward(grad[rows, t0:t1], pre)  # one fused pass
            prod = torch.mul(dpre, xr[:, t0:t1], out=pre)  # pre is dead: its buffer takes the products
            dw[:, k - 1] += prod.sum((0, 1))
            torch.mul(dpre, taps[k - 1], out=dxr[:, t0:t1])
            for s in range(1, k):
                a = max(t0, s)
                if a >= t1:
                    continue
                ds = dpre[:, a - t0:]
                dw[:, k - 1 - s] += torch.mul(ds, xr[:, a - s:t1 - s], out=prod[:, a - t0:]).sum((0, 1))
                # Blocks go forward in time, so dx's positions before t0 belong to a block already written.
                dxr[:, a - s:t1 - s].addcmul_(ds, taps[k - 1 - s])
            if db is not None:
                db += dpre.sum((0, 1))
        return dx.to(x.dtype), dw.to(weight.dtype), db.to(bias.dtype) if db is not None else None


# Elements of one block of _CausalConvSiLU (2 MiB in fp32): a block's input, pre-activation and products stay
# in a core's cache. Measured on a 2-core EPYC at 9×24×24 tokens, 768 channels: 1–2 MiB blocks are best (fwd+bwd 22 ms against 71 ms unblocked; 4 MiB: 41 ms).
_BLOCK_ELEMS = 1 << 19


def _one_block(x: torch.Tensor) -> bool:
    """Plain whole-tensor ops on CUDA and inside ``torch.compile``: cache blocking is for CPUs, and a compiled
    graph should neither unroll a loop over the batch nor write through ``out=`` views."""
    return x.is_cuda or torch.compiler.is_compiling()


def _blocks(x: torch.Tensor, weight: torch.Tensor):
    """``(rows, t0, t1)``: blocks of whole sequences, or of stretches of one sequence when a sequence alone is
    larger than ``_BLOCK_ELEMS``."""
    b, l, c = x.shape
    if l * c <= _BLOCK_ELEMS:
        rows = _BLOCK_ELEMS // max(1, l * c)
        for i in range(0, b, rows):
            yield slice(i, i + rows), 0, l
        return
    steps = max(weight.shape[1], _BLOCK_ELEMS // max(1, c))
    for i in range(b):
        for t0 in range(0, l, steps):
            yield slice(i, i + 1), t0, min(l, t0 + steps)


def _pre_into(pre, x, taps, bias, rows, t0, t1, acc):
    """The pre-activation ``bias + Σ_s taps[k-1-s] · x[t - s]`` of sequences ``rows``, steps t0..t1 (into
    ``pre`` when given, a fresh tensor of dtype ``acc`` otherwise); inputs before t0 come from x. taps: k×c."""
    k = taps.shape[0]
    xr = x[rows]
    if pre is None:
        pre = torch.empty(xr.shape[0], t1 - t0, xr.shape[2], dtype=acc, device=x.device)
    torch.mul(xr[:, t0:t1], taps[k - 1], out=pre)
    if bias is not None:
        pre += bias
    for s in range(1, k):
        a = max(t0, s)
        if a < t1:
            pre[:, a - t0:].addcmul_(xr[:, a - s:t1 - s], taps[k - 1 - s])
    return pre


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
