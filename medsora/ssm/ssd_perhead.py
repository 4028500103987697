"""SSD core with per-head decay matrices: the robust path for chunks whose decay range is too wide
for the factorised core (:mod:`medsora.ssm.ssd_factored`), e.g. strongly negative A·dt.

Per chunk of Q steps, cs = cumulative sum of dt·A inside the chunk, so every decay is exp of a
non-positive number and nothing overflows however long the sequence or however fast the decay:

- intra-chunk: ``y_q = Σ_{s<=q} (C_q·B_s) exp(cs_q - cs_s) x_s dt_s`` as one (Q×Q)@(Q×p) matmul per head;
- chunk states ``Bᵀ (exp(cs_end - cs) x dt)`` and outputs ``exp(cs) C S_in`` as one matmul per group
  over all its heads, the inter-chunk recurrence as a loop over chunks (linear in length).

A custom ``autograd.Function``: the backward recomputes the decay matrices instead of keeping them,
and differentiates the chunk loop with one reverse loop rather than one autograd node per chunk.
"""
from __future__ import annotations

import torch


def _decay_matrix(dA_t: torch.Tensor, causal: torch.Tensor) -> torch.Tensor:
    """exp(Σ_{s<k<=q} dA_k) for q >= s, else 0. dA_t: ...×Q -> ...×Q×Q.

    The segment sums are cumulative sums of the masked steps, not differences of one long
    cumulative sum: with strong decay (cs in the thousands) a difference of two nearby cs values
    would keep only ~3 significant digits.
    """
    Q = dA_t.shape[-1]
    strict = causal.tril(-1)
    seg = dA_t[..., :, None].expand(*dA_t.shape, Q).masked_fill(~strict, 0.0).cumsum(-2)
    return seg.exp_().masked_fill_(~causal, 0.0)


def _tail_sums(dA: torch.Tensor, dim: int) -> torch.Tensor:
    """Σ_{k>q} dA_k along ``dim`` (the exponent of the decay from step q to the chunk end), as a sum."""
    rest = dA.narrow(dim, 1, dA.shape[dim] - 1).flip(dim).cumsum(dim).flip(dim)
    return torch.cat([rest, torch.zeros_like(dA.narrow(dim, 0, 1))], dim)


class SSDPerHeadCore(torch.autograd.Function):
    """(X = x·dt: b×l×h×p, dA = dt·A: b×l×h, B/C: b×l×g×n, S0: b×h×p×n, Q) -> (y: b×l×h×p, S_l: b×h×p×n).

    ``l`` must be a multiple of Q (the caller pads).
    """

    @staticmethod
    def forward(ctx, X, dA, B, C, S0, Q):
        b, l, h, p = X.shape
        g, n = B.shape[2], B.shape[3]
        hg, nc = h // g, l // Q
        causal = torch.ones(Q, Q, dtype=torch.bool, device=X.device).tril_()
        dA4 = dA.view(b, nc, Q, h)
        cs = dA4.cumsum(2)  # b c Q h
        cs_t = cs.transpose(2, 3).reshape(b, nc, g, hg, Q)
        Bg = B.view(b, nc, Q, g, n).transpose(2, 3)  # b c g Q n
        Cg = C.view(b, nc, Q, g, n).transpose(2, 3)
        X6 = X.view(b, nc, Q, g, hg, p)

        # Chunk states from zero, all heads of a group in one matmul: b c g n (hg p).
        Xs = X6 * torch.exp(_tail_sums(dA4, 2)).view(b, nc, Q, g, hg, 1)
        states = Bg.transpose(-1, -2) @ Xs.view(b, nc, Q, g, hg * p).transpose(2, 3)
        decay = torch.exp(cs[:, :, -1]).view(b, nc, g, 1, hg, 1)
        S_in = torch.empty_like(states)
        S = S0.view(b, g, hg, p, n).permute(0, 1, 4, 2, 3)  # b g n hg p
        for c in range(nc):
            S_in[:, c] = S.reshape(b, g, n, hg * p)
            S = decay[:, c] * S + states[:, c].view(b, g, n, hg, p)

        # Off-diagonal blocks exp(cs_q) C_q S_in, then the diagonal blocks added per head.
        y_off = (Cg @ S_in).view(b, nc, g, Q, hg, p)
        y = y_off * torch.exp(cs_t).transpose(-1, -2)[..., None]  # b c g Q hg p
        M = _decay_matrix(dA4.transpose(2, 3).reshape(b, nc, g, hg, Q), causal).mul_((Cg @ Bg.transpose(-1, -2)).unsqueeze(3))  # b c g hg Q Q
        y += (M @ X6.permute(0, 1, 3, 4, 2, 5)).transpose(3, 4)
        y = y.permute(0, 1, 3, 2, 4, 5).reshape(b, l, h, p)

        ctx.save_for_backward(X, dA, B, C, S_in, y_off)
        ctx.Q = Q
        return y, S.permute(0, 1, 3, 4, 2).reshape(b, h, p, n)

    @staticmethod
    def backward(ctx, dy, dS):
        X, dA, B, C, S_in, y_off = ctx.saved_tensors
        Q = ctx.Q
        b, l, h, p = X.shape
        g, n = B.shape[2], B.shape[3]
        hg, nc = h // g, l // Q
        causal = torch.ones(Q, Q, dtype=torch.bool, device=X.device).tril_()
        dA4 = dA.view(b, nc, Q, h)
        cs = dA4.cumsum(2)
        cs_t = cs.transpose(2, 3).reshape(b, nc, g, hg, Q)
        Bg = B.view(b, nc, Q, g, n).transpose(2, 3)
        Cg = C.view(b, nc, Q, g, n).transpose(2, 3)
        X6 = X.view(b, nc, Q, g, hg, p)
        dy6 = dy.reshape(b, nc, Q, g, hg, p).permute(0, 1, 3, 2, 4, 5)  # b c g Q hg p
        w_in = torch.exp(cs_t).transpose(-1, -2)[..., None]  # b c g Q hg 1
        dcs = dy.new_zeros(b, nc, g, Q, hg)  # gradient w.r.t. cs, head-minor

        # Off-diagonal blocks: y = w_in · (C S_in).
        G = dy6 * w_in
        dcs += (G * y_off).sum(-1)
        Gm = G.reshape(b, nc, g, Q, hg * p)
        dC = Gm @ S_in.transpose(-1, -2)  # b c g Q n
        dS_in = Cg.transpose(-1, -2) @ Gm  # b c g n (hg p)

        # Inter-chunk recurrence backwards: dS_in becomes the total gradient of each chunk's input state.
        decay = torch.exp(cs[:, :, -1]).view(b, nc, g, 1, hg, 1)
        dstates = torch.empty_like(dS_in)
        carry = dS.view(b, g, hg, p, n).permute(0, 1, 4, 2, 3)  # b g n hg p
        for c in range(nc - 1, -1, -1):
            dstates[:, c] = carry.reshape(b, g, n, hg * p)
            carry = decay[:, c] * carry + dS_in[:, c].view(b, g, n, hg, p)
        dS0 = carry.permute(0, 1, 3, 4, 2).reshape(b, h, p, n)
        d_end = (dstates * S_in).view(b, nc, g, n, hg, p).sum((3, 5)) * decay.view(b, nc, g, hg)  # b c g hg

        # Chunk states: states = Bᵀ (w_end · X).
        w_end = torch.exp(_tail_sums(dA4, 2)).view(b, nc, Q, g, hg, 1)
        Xs = (X6 * w_end).view(b, nc, Q, g, hg * p).transpose(2, 3)  # b c g Q (hg p)
        dB = Xs @ dstates.transpose(-1, -2)  # b c g Q n
        dXs = (Bg @ dstates).view(b, nc, g, Q, hg, p)
        dw = (dXs * Xs.view(b, nc, g, Q, hg, p)).sum(-1)  # d/d(cs_end - cs_q), already times w_end
        dcs -= dw
        d_end += dw.sum(3)
        dX = (dXs * w_end.view(b, nc, Q, g, hg, 1).transpose(2, 3)).transpose(3, 4)  # b c g hg Q p

        # Diagonal blocks: y = (CB ∘ L) X per head.
        CB = (Cg @ Bg.transpose(-1, -2)).unsqueeze(3)  # b c g 1 Q Q
        L = _decay_matrix(dA4.transpose(2, 3).reshape(b, nc, g, hg, Q), causal)
        Xh = X6.permute(0, 1, 3, 4, 2, 5)  # b c g hg Q p
        dyh = dy6.transpose(3, 4)  # b c g hg Q p
        dM = dyh @ Xh.transpose(-1, -2)  # b c g hg Q Q
        dX += (L * CB).transpose(-1, -2) @ dyh
        dM *= L
        dCB = dM.sum(3)  # b c g Q Q
        dM *= CB  # dM ∘ CB ∘ L: gradient w.r.t. the exponent Σ_{s<k<=q} dA_k = cs_q - cs_s
        dcs += (dM.sum(-1) - dM.sum(-2)).transpose(-1, -2)
        dC += dCB @ Bg
        dB += dCB.transpose(-1, -2) @ Cg

        dcs[:, :, :, -1] += d_end
        # cs = cumsum(dA) within the chunk, so dA_s = Σ_{q>=s} dcs_q.
        ddA = dcs.flip(3).cumsum(3).flip(3).permute(0, 1, 3, 2, 4).reshape(b, l, h)
        dX = dX.permute(0, 1, 4, 2, 3, 5).reshape(b, l, h, p)
        dB = dB.transpose(2, 3).reshape(b, l, g, n)
        dC = dC.transpose(2, 3).reshape(b, l, g, n)
        return dX, ddA, dB, dC, dS0, None
