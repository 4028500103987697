"""Mamba-2 SSD in pure PyTorch with the ``mamba_chunk_scan_combined`` signature and semantics.

Chunked block decomposition (intra-chunk quadratic form + inter-chunk state passing), linear in
length, fp32 accumulation, hand-written backward. Two exact cores:

- :mod:`medsora.ssm.ssd_factored` (fast): the intra-chunk decay is factored out of the matmuls so all
  heads of a group share one masked ``C Bᵀ``; valid while a chunk's decay range fits fp32
  comfortably. If it does not at ``chunk_size``, smaller chunks are tried down to
  ``_MIN_FACTORED_CHUNK``;
- :mod:`medsora.ssm.ssd_perhead` (robust): per-head decay matrices, any decay range.

Both give the same result up to rounding; the choice only affects speed. On CUDA, inside
``torch.compile`` and for packed sequences (``seq_idx``) the batched core
(:mod:`medsora.ssm.ssd_batched`) runs instead: no host reads, the chunk recurrence in one op.
A sequence of at most
``min(chunk_size, SHORT_MAX_LEN)`` steps skips the chunk machinery and its state entirely
(:mod:`medsora.ssm.ssd_short`): MedSora's temporal scans over a handful of latent frames.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Optional

import torch
import torch.nn.functional as F

from medsora.ssm.checks import check_ssd_inputs
from medsora.ssm.ssd_batched import ssd_batched
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


def use_batched_core(x: torch.Tensor) -> bool:
    """The batched core (:mod:`medsora.ssm.ssd_batched`) runs on CUDA and inside ``torch.compile``; the
    CPU keeps the factored/per-head cores. ``FORCE_BATCHED`` (tests, benchmarks) takes it everywhere."""
    return FORCE_BATCHED or x.is_cuda or torch.compiler.is_compiling()


FORCE_BATCHED = False

# The output of an identical earlier call, set by :func:`given_output` (thread-local: autograd may run
# backward, where recomputation happens, on another thread).
_GIVEN = threading.local()
_GIVEN.y = None


@contextlib.contextmanager
def given_output(y: Optional[torch.Tensor]):
    """Within this block, :func:`ssd` calls whose CPU path is the factored core, with no padding, no ``z`` and
    inputs in the accumulation dtype, take ``y`` (b×l×h×p, no autograd history) as their output and compute
    only the chunk states their backward needs (:class:`~medsora.ssm.ssd_factored.SSDFactoredCore`'s
    ``y_given``). For recomputation in backward of a scan whose output was kept; ``y`` must be exactly what
    the same call returned before (any other call computes its output as usual)."""
    prev, _GIVEN.y = getattr(_GIVEN, "y", None), y
    try:
        yield
    finally:
        _GIVEN.y = prev


def keeps_output_for_recompute(x: torch.Tensor, l: int, chunk_size: int, seq_idx) -> bool:
    """Whether :func:`ssd` (called with ``z=None``) on inputs like ``x`` of length ``l`` runs a core that can
    recompute its chunk states from a kept output (:func:`given_output`): the CPU's chunked cores, no
    padding, no packed sequences, fp32/fp64. The factored core is taken unless a chunk's decay range is too
    wide (then the per-head core recomputes everything: correct, only slower)."""
    return (seq_idx is None and not use_batched_core(x) and x.dtype in (torch.float32, torch.float64)
            and l > min(int(chunk_size), SHORT_MAX_LEN) and l % int(chunk_size) == 0)


def ssd(x, dt, A, B, C, chunk_size, D=None, z=None, dt_bias=None, initial_states=None, seq_idx=None,
        cu_seqlens=None, dt_softplus=False, dt_limit=(0.0, float("inf")), return_final_states=False,
        return_varlen_states=False, state_dtype=None):
    """Chunked SSD (Mamba-2): ``h_t = exp(dt_t·A) h_{t-1} + dt_t x_t B_tᵀ; y_t = h_t C_t + D x_t``, · silu(z_t).

    ``mamba_chunk_scan_combined``'s signature, positional order and return convention.
    x: b×l×h×p, dt: b×l×h, A: h, B/C: b×l×g×n, D: h or h×p, z: b×l×h×p, dt_bias: h,
    initial_states: b×h×p×n. ``seq_idx`` (b×l integers, nondecreasing along a row) packs several
    sequences in a row: the state restarts where it changes (``initial_states`` feed the first one).
    ``cu_seqlens`` (k+1 cumulative lengths, batch 1) is read only with ``return_varlen_states``: the
    state after each packed sequence, k×h×p×n. dt = softplus(dt + dt_bias) (with ``dt_softplus``),
    then clamped to ``dt_limit``. Returns y (dtype of x), then the final state b×h×p×n if
    ``return_final_states``, then the varlen states if ``return_varlen_states``; states in
    ``state_dtype`` (default fp32, fp64 for fp64 inputs). Any length (padded internally to a multiple
    of ``chunk_size``); computation in fp32 (fp64 stays fp64); full autograd.
    """
    check_ssd_inputs(x, dt, A, B, C, D, z, dt_bias, initial_states, seq_idx, cu_seqlens, return_varlen_states)
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
    lo, hi = float(dt_limit[0]), float(dt_limit[1])
    if (lo, hi) != (0.0, float("inf")):
        dt = dt.clamp(min=lo, max=hi)
    xa = x.to(acc)
    dA = dt * A.to(acc)
    S0 = initial_states.to(acc) if initial_states is not None else None
    varlen = None
    short = 1 <= l <= min(Q, SHORT_MAX_LEN)
    if seq_idx is not None or return_varlen_states or (use_batched_core(x) and not short):
        if seq_idx is not None and pad:  # padded steps continue the last sequence (decay 1, no input)
            seq_idx = torch.cat([seq_idx, seq_idx[:, -1:].expand(b, pad)], 1)
        ends = (cu_seqlens[1:] - 1).long() if return_varlen_states else None
        y, final, varlen = ssd_batched(_pad_time(xa, pad), _pad_time(dt, pad), _pad_time(dA, pad),
                                       _pad_time(B.to(acc), pad), _pad_time(C.to(acc), pad), S0, Q, seq_idx, ends)
        y = y[:, :l]
    elif short:
        y, final = ssd_short(xa, dt, dA, B.to(acc), C.to(acc), S0, return_final_states)
    else:
        # Padded steps have dA = 0 (decay 1) and no input, so they leave the state unchanged. x, B and C may be
        # strided views (slices of the conv output): the factored core reads them through views, no copies.
        xp, dtp, dAp = _pad_time(xa, pad), _pad_time(dt, pad).contiguous(), _pad_time(dA, pad).contiguous()
        Bp, Cp = _pad_time(B.to(acc), pad), _pad_time(C.to(acc), pad)
        S0 = (S0 if S0 is not None else xa.new_zeros(b, h, p, n)).contiguous()
        # The factored core's chunk length depends on the decay range, read on the host: the CPU only.
        q = _factored_chunk(dAp, Q)
        if q:
            keep = torch.is_grad_enabled() and any(t.requires_grad for t in (xp, dtp, dAp, Bp, Cp, S0))
            # The skip D·x is added inside the core, per segment while x is in cache.
            Dq = None if D is None else (D.to(acc)[:, None].expand(h, p) if D.dim() == 1 else D.to(acc)).contiguous()
            given = getattr(_GIVEN, "y", None)
            if given is not None and not (pad == 0 and z is None and x.dtype == acc and given.shape == x.shape
                                          and given.dtype == acc):
                given = None
            y, final = SSDFactoredCore.apply(xp, dtp, dAp, Bp, Cp, S0, q, Dq, given, keep)
            D = None
        else:
            y, final = SSDPerHeadCore.apply((xp * dtp[..., None]).contiguous(), dAp, Bp.contiguous(),
                                            Cp.contiguous(), S0, Q)
        y = y[:, :l]
    y = _finish(y, xa, x.dtype, D, z)
    if state_dtype is not None:
        final = final.to(state_dtype) if final is not None else None
        varlen = varlen.to(state_dtype) if varlen is not None else None
    out = (y,)
    if return_final_states:
        out += (final,)
    if return_varlen_states:
        out += (varlen,)
    return out if len(out) > 1 else y


def _finish(y, xa, dtype, D, z):
    """Skip connection D·x, SiLU(z) gate, output dtype."""
    if D is not None:
        Dv = D.to(y.dtype)
        # One pass; D as a contiguous h×p tensor (a broadcast trailing dim, or a zero stride, is slower).
        y = torch.addcmul(y, xa, (Dv[:, None].expand(xa.shape[-2:]) if Dv.dim() == 1 else Dv).contiguous())
    if z is not None:
        y = y * F.silu(z.to(y.dtype))
    return y.to(dtype)
