"""SSD of a sequence that fits in one chunk: the quadratic (attention-like) form alone, no states.

For ``l <= chunk_size`` the chunked algorithm has a single chunk, and all it needs beyond the
masked ``C Bᵀ`` product is the chunk's state ``heads·p × n`` — which for MedSora's temporal
scans (5–17 latent frames, d_state 128, heads·p = 512) is 7–25× larger than the sequence it
summarises, and which is computed, stored for backward and differentiated for nothing when no
final state is asked for. Here ``y`` comes straight from the per-head decay matrix::

    y_t = Σ_{s <= t} exp(cs_t - cs_s) (C_t · B_s) dt_s x_s  (+ exp(cs_t) C_t S0ᵀ)

with plain autograd ops (every intermediate is ``l×l`` per head, or ``l×p``); the final state
is formed only when asked for. ``cs_t - cs_s`` (t >= s) is a sum of dt·A over at most one chunk,
and the upper triangle is masked to -inf before ``exp``, so nothing overflows for dt·A <= 0.
"""
from __future__ import annotations

from typing import Optional

import torch

# Above this length the chunked core is used even for one chunk: the per-head l×l decay matrices
# grow quadratically, and for l >= 64 they cost about as much as the state they avoid.
SHORT_MAX_LEN = 48


def ssd_short(x: torch.Tensor, dt: torch.Tensor, dA: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
              S0: Optional[torch.Tensor], final: bool) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """x: b×l×h×p, dt/dA: b×l×h, B/C: b×l×g×n, S0: b×h×p×n or None (zeros).

    Returns y: b×l×h×p and, when ``final``, the state after the last step b×h×p×n.
    All inputs in the accumulation dtype; differentiable in every input.
    """
    b, l, h, p = x.shape
    g, n = B.shape[2], B.shape[3]
    hg = h // g
    cs = dA.cumsum(1).transpose(1, 2)  # b h l
    causal = torch.ones(l, l, dtype=torch.bool, device=x.device).tril_()
    decay = (cs[..., :, None] - cs[..., None, :]).masked_fill(~causal, float("-inf")).exp()  # b h t s
    cb = torch.einsum("btgn,bsgn->bgts", C, B)  # shared by the heads of a group
    mix = decay.view(b, g, hg, l, l) * cb[:, :, None]  # b g hg t s
    xdt = (x * dt[..., None]).view(b, l, g, hg, p).permute(0, 2, 3, 1, 4)  # b g hg s p
    y = torch.matmul(mix, xdt)  # b g hg t p
    if S0 is not None:
        s0 = S0.view(b, g, hg, p, n)
        y = y + cs.exp().view(b, g, hg, l, 1) * torch.einsum("btgn,bghpn->bghtp", C, s0)
    y = y.permute(0, 3, 1, 2, 4).reshape(b, l, h, p)
    state = None
    if final:
        to_end = (cs[..., -1:] - cs).exp().view(b, g, hg, l, 1)  # exp(cs_end - cs_s)
        state = torch.einsum("bghsp,bsgn->bghpn", xdt * to_end, B)
        if S0 is not None:
            state = state + cs[..., -1].exp().view(b, g, hg, 1, 1) * S0.view(b, g, hg, p, n)
        state = state.reshape(b, h, p, n)
    return y, state
