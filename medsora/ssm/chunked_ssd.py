"""Mamba-2 SSD in pure PyTorch with the ``mamba_chunk_scan_combined`` signature and semantics.

Chunked block decomposition (intra-chunk quadratic form + inter-chunk state passing), linear in
length, fp32 accumulation, hand-written backward. Two exact cores:

- :mod:`medsora.ssm.ssd_factored` (fast): the intra-chunk decay is factored out of the matmuls so all
  heads of a group share one masked ``C Bᵀ``; valid while a chunk's decay range fits fp32
  comfortably. If it does not at ``chunk_size``, smaller chunks are tried down to
  ``_MIN_FACTORED_CHUNK``;
- :mod:`medsora.ssm.ssd_perhead` (robust): per-head decay matrices, any decay range.

Both give the same result up to rounding; the choice only affects speed. A sequence of at most
``min(chunk_size, SHORT_MAX_LEN)`` steps skips the chunk machinery and its state entirely
(:mod:`medsora.ssm.ssd_short`): MedSora's temporal scans over a handful of latent frames.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from medsora.ssm.checks import check_ssd_inputs
from medsora.ssm.ssd_factored import SSDFactoredCore, chunk_decay_range, factor_range_limit
from medsora.ssm.ssd_perhead import SSDPerHeadCore
from medsora.ssm.ssd_short import SHORT_MAX_LEN, ssd_short

_MIN_FACTORED_CHUNK = 16


def _pad_time(t: torch.Tensor, pad: int) -> torch.Tensor:
    """Zero-pad dim 1 (time) of a b×l×... tensor at the end."""
    return F.pad(t, (0, 0) * (t.dim() - 2) + (0, pad)) if pad else t


def _factored_chunk(dA: torch.Tensor, Q: int) -> int:
    """Largest chunk length (Q, Q/2, ...) >= _MIN_FACTORED_CHUNK whose decay range the factored core
    accepts, or 0 if none. dA: b×l×h with l % Q == 0."""
    with torch.no_grad():
        limit = factor_range_limit(dA)
        q = Q
        while True:
            if chunk_decay_range(dA, q) <= limit:
                return q
            if q % 2 or q // 2 < _MIN_FACTORED_CHUNK:
                return 0
            q //= 2


def ssd(x, dt, A, B, C, chunk_size, D=None, z=None, dt_bias=None, dt_softplus=False,
        initial_states=None, return_final_states=False):
    """Chunked SSD (Mamba-2): ``h_t = exp(dt_t·A) h_{t-1} + dt_t x_t B_tᵀ; y_t = h_t C_t + D x_t``, · silu(z_t).

    x: b×l×h×p, dt: b×l×h, A: h, B/C: b×l×g×n, D: h or h×p, z: b×l×h×p, dt_bias: h,
    initial_states: b×h×p×n. Returns y: b×l×h×p (dtype of x) and, with ``return_final_states``,
    the final state b×h×p×n (fp32, fp64 for fp64 inputs). Any length (padded internally to a
    multiple of ``chunk_size``); computation in fp32 (fp64 stays fp64); full autograd.
    """
    check_ssd_inputs(x, dt, A, B, C, D, z, dt_bias, initial_states)
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    b, l, h, p = x.shape
    n = B.shape[3]
    Q = int(chunk_size)
    if Q < 1:
        raise ValueError(f"ssd: chunk_size must be >= 1, got {chunk_size}")
    # A sequence shorter than a chunk is one chunk of its own length: padding it up to the chunk
    # would spend chunk/l times the work (temporal scans over 5-17 frames with chunks of 64).
    Q = min(Q, max(1, l))
    pad = max(1, -(-l // Q)) * Q - l

    dt = dt.to(acc)
    if dt_bias is not None:
        dt = dt + dt_bias.to(acc)
    if dt_softplus:
        dt = F.softplus(dt)
    xa = x.to(acc)
    dA = dt * A.to(acc)
    if 1 <= l <= min(Q, SHORT_MAX_LEN):
        S0 = initial_states.to(acc) if initial_states is not None else None
        y, final = ssd_short(xa, dt, dA, B.to(acc), C.to(acc), S0, return_final_states)
        return _finish(y, xa, x.dtype, D, z, final, return_final_states)
    # Padded steps have dA = 0 (decay 1) and no input, so they leave the state unchanged.
    xp, dtp, dAp = _pad_time(xa, pad).contiguous(), _pad_time(dt, pad).contiguous(), _pad_time(dA, pad).contiguous()
    Bp, Cp = _pad_time(B.to(acc), pad).contiguous(), _pad_time(C.to(acc), pad).contiguous()
    S0 = (initial_states.to(acc) if initial_states is not None else xa.new_zeros(b, h, p, n)).contiguous()
    q = _factored_chunk(dAp, Q)
    if q:
        keep = torch.is_grad_enabled() and any(t.requires_grad for t in (xp, dtp, dAp, Bp, Cp, S0))
        y, final = SSDFactoredCore.apply(xp, dtp, dAp, Bp, Cp, S0, q, keep)
    else:
        y, final = SSDPerHeadCore.apply((xp * dtp[..., None]).contiguous(), dAp, Bp, Cp, S0, Q)
    return _finish(y[:, :l], xa, x.dtype, D, z, final, return_final_states)


def _finish(y, xa, dtype, D, z, final, return_final_states):
    """Skip connection D·x, SiLU(z) gate, output dtype."""
    if D is not None:
        Dv = D.to(y.dtype)
        y = y + xa * (Dv[:, None] if Dv.dim() == 1 else Dv)
    if z is not None:
        y = y * F.silu(z.to(y.dtype))
    y = y.to(dtype)
    return (y, final) if return_final_states else y
