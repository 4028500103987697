"""SSD core with the intra-chunk decay factored out of the matmuls: the fast pure-PyTorch path.

Per chunk of Q steps, with cs = cumulative sum of dt·A inside the chunk and m its midpoint (per
chunk and head), the decay between steps s <= q factors as
``exp(cs_q - cs_s) = exp(cs_q - m) · exp(m - cs_s) = u_q · v_s``. Then for all heads of a group at once:

    X' = v ∘ x·dt                       (Q × heads·p)
    Ŝ  = exp(m) ∘ S_in                  (heads·p × n), the state entering the chunk
    Ŷ  = C Ŝᵀ + ((C Bᵀ) ∘ causal) X'    (Q × heads·p)
    y  = u ∘ Ŷ
    S_out = exp(cs_end) ∘ S_in + u_end ∘ (X'ᵀ B)

so every matmul has N = heads·p (B and C are shared by a group's heads) and no per-head Q×Q decay
matrix exists. States are kept heads·p × n (``mamba_ssm``'s b×h×p×n), so a head's decay scales one
contiguous p·n block. The factors stay within exp(±limit/2) when the chunk's decay range
``max cs - min cs`` is bounded (:func:`factor_range_limit`; the caller checks and otherwise uses
:mod:`medsora.ssm.ssd_perhead`). ``m`` cancels exactly, so it is a constant for differentiation.
Every intermediate, forward and backward, is a product of at most two factors, so it stays below
exp(limit)·|data|; when the decay never grows (dt·A <= 0, always so for softplus dt and negative A)
every product is of a u and a v whose exponents cancel, and the bound is exp(limit/2)·|data|.

Memory and speed on CPU: chunks are processed in segments of about a MiB through work buffers
allocated once per call, so intermediates stay cache-sized and no large temporary is created
(a fresh large allocation costs a page fault per 4 KiB, expensive on VMs). The hand-written
backward keeps only the chunk-boundary states and the output, and recomputes X', Ŝ and ``C Bᵀ``
per segment.
"""
from __future__ import annotations

import torch

# Largest decay range inside a chunk for which intermediates stay far from fp32 limits (e^60 ≈ 1e26).
FACTOR_RANGE_LIMIT = 60.0
MONOTONE_FACTOR_RANGE_LIMIT = 120.0
# Elements of one segment's x-sized buffers (1 MiB in fp32): the backward keeps about ten such buffers
# and their state-sized peers live, so a segment's working set stays within a shared L3 cache and each
# elementwise pass reads what the matmul before it just wrote. Measured on a 2-core EPYC (32 MiB L3),
# L 4096, d_state 64: 5–10 % faster forward and backward than 4 MiB segments; 512 KiB is no better.
_SEGMENT_ELEMS = 1 << 18


def chunk_decay_range(dA: torch.Tensor, Q: int) -> float:
    """max over chunks and heads of (max cs - min cs) for chunks of Q steps. dA: b×l×h, l % Q == 0."""
    b, l, h = dA.shape
    cs = dA.view(b, l // Q, Q, h).cumsum(2)
    return float((cs.amax(2) - cs.amin(2)).max()) if cs.numel() else 0.0


def factor_range_limit(dA: torch.Tensor) -> float:
    """Decay range the factored core accepts for these dA (b×l×h): wider when the decay never grows."""
    return MONOTONE_FACTOR_RANGE_LIMIT if bool((dA <= 0).all()) else FACTOR_RANGE_LIMIT


class _Plan:
    """Shapes, per-chunk factors and the segment loop shared by forward and backward."""

    def __init__(self, x, dt, dA, B, Q):
        b, l, h, p = x.shape
        g, n = B.shape[2], B.shape[3]
        self.b, self.l, self.h, self.p, self.g, self.n, self.Q = b, l, h, p, g, n, Q
        self.hg, self.nc, self.hp = h // g, l // Q, (h // g) * p
        cs = dA.view(b, self.nc, Q, h).cumsum(2)
        m = (cs.amax(2, keepdim=True) + cs.amin(2, keepdim=True)) * 0.5
        self.cs = cs
        self.u = torch.exp(cs - m)  # b c Q h
        self.v = torch.exp(m - cs)
        self.w = dt.view(b, self.nc, Q, h) * self.v  # X' = w ∘ x
        state = (b, self.nc, g, self.hg, 1, 1)
        self.decay = torch.exp(cs[:, :, -1]).view(state)
        self.u_end = self.u[:, :, -1].reshape(state)
        self.em = torch.exp(m[:, :, 0]).view(state)
        # Segments are for CPU caches and page faults; a GPU is better served by one batched launch.
        self.seg = self.nc if x.is_cuda else max(1, min(self.nc, _SEGMENT_ELEMS // max(1, b * Q * h * p)))
        self.causal = torch.ones(Q, Q, dtype=torch.bool, device=x.device).tril_()
        self.st = (b, g, self.hg, p, self.n)  # one chunk's state, heads split out

    def segments(self, reverse=False):
        starts = range(0, self.nc, self.seg)
        for c0 in (reversed(starts) if reverse else starts):
            yield c0, min(self.nc, c0 + self.seg)

    def buf(self, like, rows, cols):
        """Work buffer for a full segment: (b·seg·g) × rows × cols."""
        return like.new_empty(self.b * self.seg * self.g, rows, cols)

    def tok6(self, t, c0, c1):
        """Token-major view of chunks c0..c1 of a b×l×h×p tensor: b k Q g hg p."""
        return t[:, c0 * self.Q:c1 * self.Q].view(self.b, c1 - c0, self.Q, self.g, self.hg, self.p)

    def grp6(self, buf, k):
        """A (b·k·g)×Q×hp buffer as b k Q g hg p (a transposed view of b k g Q hg p)."""
        return buf[:self.b * k * self.g].view(self.b, k, self.g, self.Q, self.hg, self.p).transpose(2, 3)

    def per_tok(self, t, c0, c1):
        """A b c Q h factor for chunks c0..c1, expanded over p (explicitly: TensorIterator is several
        times slower broadcasting a trailing size-1 dim)."""
        k = c1 - c0
        s6 = (self.b, k, self.Q, self.g, self.hg, self.p)
        return t[:, c0:c1].reshape(*s6[:5], 1).expand(s6)

    def group_bc(self, M, c0, c1):
        """B or C of chunks c0..c1 as (b·k·g)×Q×n (a copy: a slice of b×l×g×n is not one batch dimension)."""
        k = c1 - c0
        return M[:, c0 * self.Q:c1 * self.Q].reshape(self.b, k, self.Q, self.g, self.n).transpose(2, 3).reshape(
            -1, self.Q, self.n)

    def fill(self, Xp, CBm, x, Bg, Cg, c0, c1):
        """Xp ← X' = w ∘ x and CBm ← (C Bᵀ) ∘ causal for chunks c0..c1; returns the used views."""
        r = self.b * (c1 - c0) * self.g
        torch.mul(self.tok6(x, c0, c1), self.per_tok(self.w, c0, c1), out=self.grp6(Xp, c1 - c0))
        torch.bmm(Cg, Bg.transpose(1, 2), out=CBm[:r])
        CBm[:r].masked_fill_(~self.causal, 0.0)
        return Xp[:r], CBm[:r]


class SSDFactoredCore(torch.autograd.Function):
    """(x: b×l×h×p, dt: b×l×h, dA = dt·A: b×l×h, B/C: b×l×g×n, S0: b×h×p×n, Q, D: h×p or None, y_given,
    keep_states) -> (y: b×l×h×p, S_l: b×h×p×n), y including the skip D·x when D is given.

    ``l`` must be a multiple of Q (the caller pads) and every chunk's decay range at most
    :func:`factor_range_limit`. The skip is added per segment while x is in cache, and the backward
    takes the scan's own part as ``y - D·x`` (so only y is kept, whatever D).

    ``y_given`` (y of an earlier identical call, without autograd history, or None): only the chunk
    states are computed (about 40 % of the work: no ``C Ŝᵀ``, no ``C Bᵀ``, no output) and y_given is
    returned as y. The Mamba-2 layers use it when they recompute the scan in backward while keeping its
    output (:meth:`medsora.ssm.mamba2.Mamba2Layer._mixer`); the backward is the same either way.
    """

    @staticmethod
    def forward(ctx, x, dt, dA, B, C, S0, Q, D=None, y_given=None, keep_states=True):
        pl = _Plan(x, dt, dA, B, Q)
        b, n, g, hg, p, hp, st = pl.b, pl.n, pl.g, pl.hg, pl.p, pl.hp, pl.st
        states_only = y_given is not None
        Xp, P = pl.buf(x, Q, hp), pl.buf(x, hp, n)
        if not states_only:
            Sh, Yh, CBm = pl.buf(x, hp, n), pl.buf(x, Q, hp), pl.buf(x, Q, Q)
        y = y_given if states_only else x.new_empty(x.shape)
        D6 = D.reshape(g, hg, p) if D is not None else None
        # For the backward, the state entering each chunk and, last, the final state, in one tensor so
        # segments share their boundary states. Without a backward (inference, ``keep_states=False``) one
        # segment's states are enough: memory stays O(segment) at any length.
        states_all = x.new_empty(b, (pl.nc if keep_states else pl.seg) + 1, *st[1:])
        S = S0.view(st)
        for c0, c1 in pl.segments():
            k = c1 - c0
            r = b * k * g
            Bg = pl.group_bc(B, c0, c1)
            if states_only:
                torch.mul(pl.tok6(x, c0, c1), pl.per_tok(pl.w, c0, c1), out=pl.grp6(Xp, k))
                Xk = Xp[:r]
            else:
                Cg = pl.group_bc(C, c0, c1)
                Xk, CBk = pl.fill(Xp, CBm, x, Bg, Cg, c0, c1)
            torch.bmm(Xk.transpose(1, 2), Bg, out=P[:r])  # chunk states from zero, before the u_end factor
            seg_st = (b, k, *st[1:])
            states = states_all[:, c0:c1 + 1] if keep_states else states_all[:, :k + 1]
            states[:, 0] = S
            # S_in[j+1] = decay_j·S_in[j] + u_end_j·P_j: the scaling is done for the whole segment at
            # once, so the sequential loop is a single op per chunk.
            Pu = P[:r].view(seg_st).mul_(pl.u_end[:, c0:c1].expand(seg_st))
            for j in range(k):
                torch.addcmul(Pu[:, j], states[:, j], pl.decay[:, c0 + j].expand(st), out=states[:, j + 1])
            S = states[:, k]
            if states_only:
                continue
            torch.mul(states[:, :k], pl.em[:, c0:c1].expand(seg_st), out=Sh[:r].view(seg_st))
            torch.bmm(Cg, Sh[:r].transpose(1, 2), out=Yh[:r]).baddbmm_(CBk, Xk)
            y6 = torch.mul(pl.grp6(Yh, k), pl.per_tok(pl.u, c0, c1), out=pl.tok6(y, c0, c1))
            if D6 is not None:
                y6.addcmul_(pl.tok6(x, c0, c1), D6)
        if keep_states:
            ctx.save_for_backward(x, dt, dA, B, C, y, states_all, D)
        ctx.Q = Q
        return y, S.reshape(b, pl.h, p, n).clone()  # not a view of a saved tensor

    @staticmethod
    def backward(ctx, dy, dS):
        x, dt, dA, B, C, y, states_all, D = ctx.saved_tensors
        Q = ctx.Q
        pl = _Plan(x, dt, dA, B, Q)
        b, l, h, p, g, n, hg, hp, st = pl.b, pl.l, pl.h, pl.p, pl.g, pl.n, pl.hg, pl.hp, pl.st
        Xp, Sh, CBm = pl.buf(x, Q, hp), pl.buf(x, hp, n), pl.buf(x, Q, Q)
        dYh, dSh, dXp, dP = pl.buf(x, Q, hp), pl.buf(x, hp, n), pl.buf(x, Q, hp), pl.buf(x, hp, n)
        dCB, dCk, dBk = pl.buf(x, Q, Q), pl.buf(x, Q, n), pl.buf(x, Q, n)
        dx, dB, dC = torch.empty_like(x), torch.empty_like(B), torch.empty_like(C)
        D6 = D.reshape(g, hg, p) if D is not None else None
        dD = torch.zeros(g, hg, p, dtype=x.dtype, device=x.device) if D is not None else None
        dcs = torch.empty_like(pl.cs)  # b c Q h
        dw = torch.empty_like(pl.cs)  # gradient w.r.t. w = dt·v
        G = dS.reshape(st)  # dL/d(state after the chunk)
        for c0, c1 in pl.segments(reverse=True):
            k = c1 - c0
            states = states_all[:, c0:c1 + 1]
            r = b * k * g
            Bg, Cg = pl.group_bc(B, c0, c1), pl.group_bc(C, c0, c1)
            Xk, CBk = pl.fill(Xp, CBm, x, Bg, Cg, c0, c1)
            Shk = Sh[:r]
            seg_st = (b, k, *st[1:])
            torch.mul(states[:, :k], pl.em[:, c0:c1].expand(seg_st), out=Shk.view(seg_st))
            # y = u ∘ Ŷ: through u (m is a constant), d/dcs_q = Σ_p dy ∘ y.
            dy6, x6 = pl.tok6(dy, c0, c1), pl.tok6(x, c0, c1)
            # Products for the reductions go through a work buffer free at that point (dYh here, dSh and
            # Xp below): a fresh multi-MiB temporary per segment costs more in page faults than the product.
            if D6 is None:
                dYk6 = torch.mul(dy6, pl.tok6(y, c0, c1), out=pl.grp6(dYh, k))
            else:  # the scan's own output y - D·x; D's gradient Σ dy·x (dXp is free until its bmm below)
                dD += torch.mul(dy6, x6, out=pl.grp6(dXp, k)).sum((0, 1, 2))
                dYk6 = torch.mul(x6, D6, out=pl.grp6(dYh, k))
                torch.sub(pl.tok6(y, c0, c1), dYk6, out=dYk6).mul_(dy6)
            dcs[:, c0:c1] = dYk6.sum(-1).reshape(b, k, Q, h)
            torch.mul(dy6, pl.per_tok(pl.u, c0, c1), out=dYk6)
            dYk = dYh[:r]
            # Ŷ = C Ŝᵀ + CBm X'
            torch.bmm(dYk, Shk, out=dCk[:r])
            torch.bmm(dYk, Xk.transpose(1, 2), out=dCB[:r])
            torch.bmm(dYk.transpose(1, 2), Cg, out=dSh[:r])
            torch.bmm(CBk.transpose(1, 2), dYk, out=dXp[:r])
            # Recurrence backwards. S_out = decay·S_in + u_end·P with decay = exp(cs_end),
            # u_end = exp(cs_end - m) and Ŝ = exp(m)·S_in, so d/d cs_end = Σ G ∘ S_out.
            # Gs[j] = dL/d(state after chunk j); one op per chunk in the sequential loop.
            dSe = dSh[:r].view(seg_st).mul_(pl.em[:, c0:c1].expand(seg_st))  # gradient w.r.t. S_in via Ŝ
            Gs = dP[:r].view(seg_st)
            Gs[:, k - 1] = G
            for j in range(k - 1, 0, -1):
                torch.addcmul(dSe[:, j], Gs[:, j], pl.decay[:, c0 + j].expand(st), out=Gs[:, j - 1])
            G = torch.addcmul(dSe[:, 0], Gs[:, 0], pl.decay[:, c0].expand(st))
            dcs[:, c0:c1, -1] += torch.mul(Gs, states[:, 1:], out=dSe).sum((-2, -1)).view(b, k, h)
            Gs.mul_(pl.u_end[:, c0:c1].expand(seg_st))  # now dL/dP
            # P = X'ᵀ B (heads·p × n)
            dPk = dP[:r]
            dXp[:r].baddbmm_(Bg, dPk.transpose(1, 2))
            torch.bmm(Xk, dPk, out=dBk[:r])
            # X' = w ∘ x
            dX6 = pl.grp6(dXp, k)
            dw[:, c0:c1] = torch.mul(dX6, pl.tok6(x, c0, c1), out=pl.grp6(Xp, k)).sum(-1).reshape(b, k, Q, h)
            dx6 = torch.mul(dX6, pl.per_tok(pl.w, c0, c1), out=pl.tok6(dx, c0, c1))
            if D6 is not None:
                dx6.addcmul_(dy6, D6)
            # CBm = (C Bᵀ) ∘ causal
            dCBk = dCB[:r].masked_fill_(~pl.causal, 0.0)
            dBk[:r].baddbmm_(dCBk.transpose(1, 2), Cg)
            dCk[:r].baddbmm_(dCBk, Bg)
            t0, t1 = c0 * Q, c1 * Q
            dB[:, t0:t1] = dBk[:r].view(b, k, g, Q, n).transpose(2, 3).reshape(b, k * Q, g, n)
            dC[:, t0:t1] = dCk[:r].view(b, k, g, Q, n).transpose(2, 3).reshape(b, k * Q, g, n)
        dS0 = G.reshape(b, h, p, n)
        # w = dt·exp(m - cs): dw ∘ w is the gradient w.r.t. -cs.
        dcs -= dw * pl.w
        ddt = (dw * pl.v).view(b, l, h)
        ddA = dcs.flip(2).cumsum(2).flip(2).reshape(b, l, h)  # cs = cumsum(dA) inside the chunk
        return dx, ddt, ddA, dB, dC, dS0, None, dD.view(D.shape) if D is not None else None, None, None
