"""Mamba-1 selective scan (S6) in pure PyTorch with the ``selective_scan_fn`` signature and semantics.

S6 has a decay per (channel, state) pair, so SSD's matmul form does not apply: the work is
O(b·d·l·n) elementwise and the recurrence is the algorithm. What makes it fast and bounded here:

- time is cut into blocks processed one after another, so only one block's b×d×block×n
  intermediates exist at a time (the full-length tensors are b×d×l and b×n×l);
- per block the decays exp(Δ·A) and inputs Δ·u·B are computed in one vectorised pass each, the
  recurrence is one fused multiply-add per step, and the contractions over the state (y = h·C and
  the gradients of B, C, u) are batched matmuls;
- when b·d·n is small, one op per step would be mostly overhead, so the block is cut into sub-chunks
  that all advance together from a zero state, then their start states are carried across and added
  back with their decay (a two-level scan). Every factor is an ``exp`` of a non-positive number
  (for Δ·A <= 0): no exponentials of cumulative sums that could overflow;
- a hand-written backward (custom ``autograd.Function``): the adjoint of a linear recurrence is the
  same recurrence run backwards, so each block's states are recomputed from its saved start state —
  O(b·d·n) saved per block instead of autograd's per-step graph.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from medsora.ssm.checks import check_selective_scan_inputs

_BLOCK_ELEMS = 1 << 21  # b·d·n·block elements per block intermediate (8 MiB in fp32)
_STEP_ELEMS = 1 << 14  # below this many elements per step, sub-chunks are scanned together
_STEP_ELEMS_CUDA = 1 << 20  # a kernel launch per step costs more than a CPU op: vectorise further


def _plan(l: int, bdn: int, cuda: bool = False) -> tuple:
    """(sub-chunk length q, sub-chunks per block S) for a sequence of l steps of b·d·n states."""
    block = 1 << max(4, min(12, int(math.log2(max(1, _BLOCK_ELEMS // max(bdn, 1))))))
    block = min(block, 1 << max(0, math.ceil(math.log2(max(l, 1)))))
    step_elems = _STEP_ELEMS_CUDA if cuda else _STEP_ELEMS
    S = 1 << max(0, math.ceil(math.log2(max(1.0, step_elems / max(bdn, 1)))))
    S = min(S, max(1, block // 4))
    return block // S, S


def _to_steps(t: torch.Tensor, S: int, q: int) -> torch.Tensor:
    """b×c×(S·q) -> q×S×b×c (step-major so each step touches contiguous memory)."""
    b, c, _ = t.shape
    return t.reshape(b, c, S, q).permute(3, 2, 0, 1).contiguous()


def _from_steps(t: torch.Tensor) -> torch.Tensor:
    """q×S×b×c -> b×c×(S·q)."""
    q, S, b, c = t.shape
    return t.permute(2, 3, 1, 0).reshape(b, c, S * q)


def _scan_block(a, h, h_in):
    """In place: h (q×S×b×d×n, holding the inputs) becomes the states of the block started at h_in."""
    q, S = a.shape[:2]
    if S == 1:
        h[0, 0].addcmul_(a[0, 0], h_in)
        for j in range(1, q):
            h[j].addcmul_(a[j], h[j - 1])
        return h[-1, 0]
    for j in range(1, q):
        h[j].addcmul_(a[j], h[j - 1])
    decay = a.prod(0)  # S×b×d×n, decay over each sub-chunk
    starts = torch.empty_like(decay)
    state = h_in
    for s in range(S):
        starts[s] = state
        state = torch.addcmul(h[-1, s], decay[s], state)
    for j in range(q):
        starts.mul_(a[j])
        h[j].add_(starts)
    return state


def _adjoint_block(a, g, g_in):
    """In place: g (holding dL/dh from the outputs) becomes the total dL/dh_t of the block.

    ``g_in`` is a_{t+1}·g_{t+1} for the step after the block; returns the same for the block's
    first step (what flows into the state before the block).
    """
    q, S = a.shape[:2]
    if S == 1:
        g[-1, 0].add_(g_in)
        for j in range(q - 2, -1, -1):
            g[j].addcmul_(a[j + 1], g[j + 1])
        return a[0, 0] * g[0, 0]
    for j in range(q - 2, -1, -1):
        g[j].addcmul_(a[j + 1], g[j + 1])
    decay = a.prod(0)
    ends = torch.empty_like(decay)
    carry = g_in
    for s in range(S - 1, -1, -1):
        ends[s] = carry
        carry = torch.addcmul(a[0, s] * g[0, s], decay[s], carry)
    for j in range(q - 1, -1, -1):
        g[j].add_(ends)
        ends.mul_(a[j])
    return carry


class _Block:
    """One block's inputs in step-major layout: δ, u (q×S×b×d), B, C (q×S×b×g×n)."""

    def __init__(self, delta, u, B, C, sl, q, S):
        b, g, n, K = B.shape[0], B.shape[1], B.shape[2], q * S
        self.delta, self.u = _to_steps(delta[..., sl], S, q), _to_steps(u[..., sl], S, q)
        self.B = _to_steps(B[..., sl].reshape(b, g * n, K), S, q).view(q, S, b, g, n)
        self.C = _to_steps(C[..., sl].reshape(b, g * n, K), S, q).view(q, S, b, g, n)
        self.shape = (q, S, b, g, self.u.shape[-1] // g, n)  # q S b g (d/g) n

    def coeffs(self, A):
        """Decays a = exp(δA) and inputs δ·u·B: q×S×b×d×n each."""
        q, S, b, g, dg, n = self.shape
        a = torch.exp(self.delta[..., None] * A)
        bx = ((self.delta * self.u).view(q, S, b, g, dg, 1) * self.B.view(q, S, b, g, 1, n)).view(q, S, b, g * dg, n)
        return a, bx

    def mats(self, t, rows, cols):
        """A q×S×b×d×n (or ...×d / ...×g×n) tensor as (q·S·b·g) × rows × cols matrices for bmm."""
        return t.reshape(-1, rows, cols)


class _SelectiveScanCore(torch.autograd.Function):
    """(δ, u: b×d×l; A: d×n; B, C: b×g×n×l; h0: b×d×n) -> (Σ_n C_t h_t: b×d×l, h_l: b×d×n)."""

    @staticmethod
    def forward(ctx, delta, u, A, B, C, h0):
        b, d, l = u.shape
        g, n = B.shape[1], B.shape[2]
        dg = d // g
        q, S = _plan(l, b * d * n, u.is_cuda)
        K = q * S
        nb = -(-l // K)
        pad = nb * K - l
        if pad:  # δ = 0 steps: decay 1, no input, so the state is carried through unchanged
            delta, u = F.pad(delta, (0, pad)), F.pad(u, (0, pad))
            B, C = F.pad(B, (0, pad)), F.pad(C, (0, pad))
        y = u.new_empty(b, d, nb * K)
        starts = u.new_empty(nb, b, d, n)
        state = h0
        for k in range(nb):
            sl = slice(k * K, (k + 1) * K)
            starts[k] = state
            blk = _Block(delta, u, B, C, sl, q, S)
            a, h = blk.coeffs(A)
            state = _scan_block(a, h, state)
            yk = torch.bmm(blk.mats(h, dg, n), blk.mats(blk.C, n, 1))  # y_t = h_t · C_t
            y[..., sl] = _from_steps(yk.view(q, S, b, d))
        ctx.save_for_backward(delta, u, A, B, C, starts)
        ctx.plan = (q, S, l)
        return y[..., :l], state.clone()

    @staticmethod
    def backward(ctx, dy, dstate):
        delta, u, A, B, C, starts = ctx.saved_tensors
        q, S, l = ctx.plan
        K = q * S
        nb = starts.shape[0]
        b, d, lp = u.shape
        g, n = B.shape[1], B.shape[2]
        dg = d // g
        dy = F.pad(dy, (0, lp - l)) if lp > l else dy
        ddelta, du = torch.empty_like(delta), torch.empty_like(u)
        dB, dC = torch.empty_like(B), torch.empty_like(C)
        dA = torch.zeros_like(A)
        carry = dstate.contiguous()
        for k in range(nb - 1, -1, -1):
            sl = slice(k * K, (k + 1) * K)
            blk = _Block(delta, u, B, C, sl, q, S)
            a, bx = blk.coeffs(A)
            h = bx.clone()
            _scan_block(a, h, starts[k])
            dyk = _to_steps(dy[..., sl], S, q)
            dyr = blk.mats(dyk, 1, dg)
            # y_t = h_t · C_t
            dC[..., sl] = _from_steps(torch.bmm(dyr, blk.mats(h, dg, n)).view(q, S, b, g * n)).view(b, g, n, K)
            gk = (dyk.view(q, S, b, g, dg, 1) * blk.C.view(q, S, b, g, 1, n)).view_as(a)
            carry = _adjoint_block(a, gk, carry)
            # h_t = a_t h_{t-1} + bx_t: dL/d(δA) = g_t ∘ a_t h_{t-1} = g_t ∘ (h_t - bx_t).
            dlog_a = h.sub_(bx).mul_(gk)
            du_in = torch.bmm(blk.mats(gk, dg, n), blk.mats(blk.B, n, 1)).view(q, S, b, d)  # dL/d(δ·u)
            dB[..., sl] = _from_steps(torch.bmm(blk.mats(blk.delta * blk.u, 1, dg), blk.mats(gk, dg, n))
                                      .view(q, S, b, g * n)).view(b, g, n, K)
            ddelta[..., sl] = _from_steps(du_in * blk.u + (dlog_a * A).sum(-1))
            du[..., sl] = _from_steps(du_in * blk.delta)
            dA += (dlog_a * blk.delta[..., None]).sum((0, 1, 2))
        return ddelta[..., :l], du[..., :l], dA, dB[..., :l], dC[..., :l], carry


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   return_last_state=False, initial_state=None):
    """S6 scan ``h_t = exp(Δ_t A) h_{t-1} + Δ_t u_t B_t; y_t = h_t·C_t (+ D u_t), · silu(z_t)``.

    u/delta: b×d×l, A: d×n, B/C: b×n×l or b×g×n×l, D: d, z: b×d×l, delta_bias: d,
    initial_state: b×d×n (an extension of ``selective_scan_fn`` so a sequence can be scanned in
    pieces). Returns y: b×d×l (dtype of u) and, with ``return_last_state``, the last state b×d×n
    (fp32, fp64 for fp64 inputs). Accumulates in fp32; full autograd.
    """
    check_selective_scan_inputs(u, delta, A, B, C, D, z, delta_bias, initial_state)
    acc = torch.float64 if u.dtype == torch.float64 else torch.float32
    b, d, l = u.shape
    n = A.shape[1]
    dlt = delta.to(acc)
    if delta_bias is not None:
        dlt = dlt + delta_bias.to(acc)[:, None]
    if delta_softplus:
        dlt = F.softplus(dlt)
    Bg = (B if B.dim() == 4 else B.unsqueeze(1)).to(acc).contiguous()
    Cg = (C if C.dim() == 4 else C.unsqueeze(1)).to(acc).contiguous()
    ua = u.to(acc)
    h0 = initial_state.to(acc) if initial_state is not None else ua.new_zeros(b, d, n)
    if l == 0:
        y, last = ua.new_zeros(b, d, 0), h0
    else:
        y, last = _SelectiveScanCore.apply(dlt.contiguous(), ua.contiguous(), A.to(acc).contiguous(), Bg, Cg,
                                           h0.contiguous())
    if D is not None:
        y = y + ua * D.to(acc)[:, None]
    if z is not None:
        y = y * F.silu(z.to(acc))
    y = y.to(u.dtype)
    return (y, last) if return_last_state else y
