"""SSD core in plain, batched tensor ops: the GPU path, the compiled path and packed sequences.

The chunked form of the Mamba-2 paper's minimal SSD (Listing 1), written with exact segment sums
and grouped B/C: per chunk of Q steps the intra-chunk output is one masked ``(C Bᵀ ∘ L) X`` per
head, the chunk states are one contraction, and the **inter-chunk recurrence is one batched
contraction** with the matrix of chunk-to-chunk decays ``exp(segsum(cs_end))`` (c+1 × c+1 per
head), instead of one launch per chunk. Every exponent is a sum of dt·A over a stretch of steps,
so for dt·A <= 0 every factor is at most 1 and nothing overflows at any length or decay.

Why a second core next to :mod:`medsora.ssm.ssd_factored`: that one is faster on a CPU (cache-sized
segments, hand-written backward, O(chunks) saved state) but it reads the chunk decay range on the
host to choose its chunk length, and walks the chunks one op at a time. Here nothing depends on
tensor values (no host synchronisation, no graph break under ``torch.compile``), the chunk loop is
one op (what a GPU wants), and autograd differentiates plain ops. Cost: O(b·h·l·Q) memory for the
per-head decay matrices, O(b·h·(l/Q)²) for the chunk-to-chunk matrix (negligible below ~10⁵ steps).

Packed sequences (``seq_idx``: b×l, nondecreasing along each row, as ``mamba_ssm``): the state is
reset where ``seq_idx`` changes, so no step ever sees a step of another sequence. Implemented as
masks on the three decay factors (intra-chunk, step-to-chunk-end, chunk-to-chunk), no branching.
"""
from __future__ import annotations

from typing import Optional

import torch


def segsum(x: torch.Tensor) -> torch.Tensor:
    """``out[..., i, j] = Σ_{j<k<=i} x[..., k]`` for i >= j, ``-inf`` above the diagonal. x: ...×T -> ...×T×T.

    Cumulative sums of the masked steps, not differences of one long cumulative sum: with strong
    decay a difference of two nearby large sums keeps few significant digits.
    """
    T = x.shape[-1]
    ones = torch.ones(T, T, dtype=torch.bool, device=x.device)
    seg = x[..., :, None].expand(*x.shape, T).masked_fill(~ones.tril(-1), 0.0).cumsum(-2)
    return seg.masked_fill(~ones.tril(), float("-inf"))


def ssd_batched(x: torch.Tensor, dt: torch.Tensor, dA: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                S0: Optional[torch.Tensor], Q: int, seq_idx: Optional[torch.Tensor] = None,
                ends: Optional[torch.Tensor] = None):
    """x: b×l×h×p, dt/dA: b×l×h, B/C: b×l×g×n, S0: b×h×p×n or None, l a multiple of Q; all in the
    accumulation dtype. seq_idx: b×l integer (packed sequences) or None. ends: positions (k,) in row 0
    whose states are also returned (``return_varlen_states``).

    Returns ``(y: b×l×h×p, final state b×h×p×n, states at ends k×h×p×n or None)``.
    """
    b, l, h, p = x.shape
    g, n = B.shape[2], B.shape[3]
    hg, c = h // g, l // Q
    X = (x * dt[..., None]).view(b, c, Q, g, hg, p)
    Bc, Cc = B.view(b, c, Q, g, n), C.view(b, c, Q, g, n)
    dAc = dA.view(b, c, Q, g, hg).permute(0, 3, 4, 1, 2)  # b g hg c Q
    cs = dAc.cumsum(-1)
    same = seq = None
    if seq_idx is not None:
        seq = seq_idx.view(b, 1, 1, c, Q)
        same = seq[..., :, None] == seq[..., None, :]  # b 1 1 c Q Q

    # 1. Within chunks: y_t = Σ_{s<=t} (C_t·B_s) exp(cs_t - cs_s) X_s.
    L = torch.exp(segsum(dAc))  # b g hg c Q Q
    if same is not None:
        L = L * same
    CB = torch.einsum("bctgn,bcsgn->bgcts", Cc, Bc)[:, :, None]  # b g 1 c Q Q: shared by a group's heads
    y = torch.einsum("bgkcts,bcsgkp->bctgkp", L * CB, X)

    # 2. Each chunk's state from a zero start: Σ_s exp(cs_end - cs_s) X_s B_sᵀ.
    to_end = torch.exp(cs[..., -1:] - cs)  # b g hg c Q
    if seq is not None:
        to_end = to_end * (seq == seq[..., -1:])
    local = torch.einsum("bgkcs,bcsgkp,bcsgn->bcgkpn", to_end, X, Bc)

    # 3. Chunk-to-chunk recurrence in one contraction: entering[z] = Σ_{c<=z} exp(cs_end(c..z]) start[c].
    start = torch.cat([(S0 if S0 is not None else x.new_zeros(b, h, p, n)).view(b, 1, g, hg, p, n), local], 1)
    carry = torch.exp(segsum(torch.nn.functional.pad(cs[..., -1], (1, 0))))  # b g hg c+1 c+1
    if seq is not None:
        # The sequence each boundary belongs to: the first step's for the initial state, then each chunk end's.
        sid = torch.cat([seq_idx[:, :1], seq_idx.view(b, c, Q)[:, :, -1]], 1).view(b, 1, 1, c + 1)
        carry = carry * (sid[..., :, None] == sid[..., None, :])
    states = torch.einsum("bgkzc,bcgkpn->bzgkpn", carry, start)  # b c+1 g hg p n
    entering, final = states[:, :-1], states[:, -1]

    # 4. The entering state's contribution: exp(cs_t) C_t · S_in.
    from_start = torch.exp(cs)  # b g hg c Q
    if seq is not None:
        from_start = from_start * (seq == sid[..., :-1, None])
    y = y + torch.einsum("bctgn,bcgkpn,bgkct->bctgkp", Cc, entering, from_start)
    y = y.reshape(b, l, h, p)

    at_ends = None
    if ends is not None:
        # State right after step e = (chunk ce, offset te): the entering state carried to te plus the
        # chunk's own steps up to te, both masked to e's sequence (row 0; varlen packs into one row).
        ce, te = ends // Q, ends % Q
        Lrow = L[0, :, :, ce, te]  # g hg k Q (already masked to e's sequence)
        own = torch.einsum("gkis,isgkp,isgn->igkpn", Lrow, X[0, ce], Bc[0, ce])
        decay_in = from_start[0, :, :, ce, te]  # g hg k
        at_ends = own + decay_in.permute(2, 0, 1)[..., None, None] * entering[0, ce]
        at_ends = at_ends.reshape(-1, h, p, n)
    return y, final.reshape(b, h, p, n), at_ends
