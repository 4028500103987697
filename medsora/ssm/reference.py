"""Sequential reference recurrences: the ground truth the fast scans are tested against.

One Python step per time step, fp32 (or fp64) accumulation, no cleverness. Same signatures and
semantics as ``mamba_ssm``'s ``mamba_chunk_scan_combined`` and ``selective_scan_fn``, plus the
initial state of :func:`selective_scan_ref` that lets a sequence be processed in pieces.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from medsora.ssm.checks import check_selective_scan_inputs, check_ssd_inputs


def _acc_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def ssd_ref(x, dt, A, B, C, chunk_size=None, D=None, z=None, dt_bias=None, initial_states=None, seq_idx=None,
            cu_seqlens=None, dt_softplus=False, dt_limit=(0.0, float("inf")), return_final_states=False,
            return_varlen_states=False, state_dtype=None):
    """Mamba-2 SSD as the plain recurrence ``h_t = exp(dt_t·A) h_{t-1} + dt_t x_t B_tᵀ; y_t = h_t C_t``.

    ``mamba_chunk_scan_combined``'s signature. x: b×l×h×p, dt: b×l×h, A: h, B/C: b×l×g×n, D: h or
    h×p, z: b×l×h×p, dt_bias: h, initial_states: b×h×p×n; the state is zeroed where ``seq_idx``
    (b×l) changes; ``cu_seqlens`` gives the varlen states' positions. Returns y: b×l×h×p (dtype of
    x), then the final state b×h×p×n (with ``return_final_states``), then the state after each
    packed sequence (with ``return_varlen_states``). ``chunk_size`` is accepted for signature
    parity and ignored.
    """
    check_ssd_inputs(x, dt, A, B, C, D, z, dt_bias, initial_states, seq_idx, cu_seqlens, return_varlen_states)
    acc = _acc_dtype(x)
    b, l, h, p = x.shape
    g, n = B.shape[2], B.shape[3]
    dt = dt.to(acc)
    if dt_bias is not None:
        dt = dt + dt_bias.to(acc)
    if dt_softplus:
        dt = F.softplus(dt)
    if (float(dt_limit[0]), float(dt_limit[1])) != (0.0, float("inf")):
        dt = dt.clamp(min=float(dt_limit[0]), max=float(dt_limit[1]))
    heads_per_group = h // g
    Bh = B.to(acc).repeat_interleave(heads_per_group, dim=2)  # b l h n
    Ch = C.to(acc).repeat_interleave(heads_per_group, dim=2)
    xa = x.to(acc)
    state = (initial_states.to(acc) if initial_states is not None
             else x.new_zeros(b, h, p, n, dtype=acc))
    decay = torch.exp(dt * A.to(acc))  # b l h
    if seq_idx is not None:  # a new sequence starts from a zero state
        new = torch.ones_like(seq_idx, dtype=torch.bool)
        new[:, 1:] = seq_idx[:, 1:] != seq_idx[:, :-1]
        new[:, 0] = False
        decay = decay.masked_fill(new[..., None], 0.0)
    decay = decay[..., None, None]  # b l h 1 1
    xdt = dt[..., None] * xa  # b l h p
    ys, states = [], []
    # unbind (one autograd node) rather than indexing per step, whose backward would be O(l²).
    for decay_t, xdt_t, B_t, C_t in zip(decay.unbind(1), xdt.unbind(1), Bh.unbind(1), Ch.unbind(1)):
        state = decay_t * state + xdt_t[..., None] * B_t[:, :, None, :]
        ys.append(torch.einsum("bhpn,bhn->bhp", state, C_t))
        if return_varlen_states:
            states.append(state[0])
    y = torch.stack(ys, dim=1) if ys else xa.new_zeros(b, 0, h, p)
    if D is not None:
        Dv = D.to(acc)
        y = y + xa * (Dv[:, None] if Dv.dim() == 1 else Dv)
    if z is not None:
        y = y * F.silu(z.to(acc))
    y = y.to(x.dtype)
    out = (y,)
    if return_final_states:
        out += (state if state_dtype is None else state.to(state_dtype),)
    if return_varlen_states:
        varlen = torch.stack([states[int(e) - 1] for e in cu_seqlens[1:]])
        out += (varlen if state_dtype is None else varlen.to(state_dtype),)
    return out if len(out) > 1 else y


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                       return_last_state=False, initial_state=None):
    """Mamba-1 S6 as the plain recurrence ``h_t = exp(Δ_t A) h_{t-1} + Δ_t u_t B_t; y_t = h_t·C_t``.

    u/delta: b×d×l, A: d×n, B/C: b×n×l or b×g×n×l, D: d, z: b×d×l, delta_bias: d,
    initial_state: b×d×n. Returns y: b×d×l (dtype of u) and, with ``return_last_state``, the last
    state b×d×n (fp32, or fp64 for fp64 inputs).
    """
    check_selective_scan_inputs(u, delta, A, B, C, D, z, delta_bias, initial_state)
    acc = _acc_dtype(u)
    b, d, l = u.shape
    n = A.shape[1]
    delta = delta.to(acc)
    if delta_bias is not None:
        delta = delta + delta_bias.to(acc)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    Bd = B.to(acc) if B.dim() == 4 else B.to(acc)[:, None]  # b g n l
    Cd = C.to(acc) if C.dim() == 4 else C.to(acc)[:, None]
    Bd = Bd.repeat_interleave(d // Bd.shape[1], dim=1)  # b d n l
    Cd = Cd.repeat_interleave(d // Cd.shape[1], dim=1)
    ua, Aa = u.to(acc), A.to(acc)
    state = initial_state.to(acc) if initial_state is not None else u.new_zeros(b, d, n, dtype=acc)
    du = delta * ua
    ys = []
    # unbind (one autograd node) rather than indexing per step, whose backward would be O(l²).
    for delta_t, du_t, B_t, C_t in zip(delta.unbind(2), du.unbind(2), Bd.unbind(3), Cd.unbind(3)):
        state = torch.exp(delta_t[..., None] * Aa) * state + du_t[..., None] * B_t
        ys.append((state * C_t).sum(-1))
    y = torch.stack(ys, dim=-1) if ys else ua.new_zeros(b, d, 0)
    if D is not None:
        y = y + ua * D.to(acc)[:, None]
    if z is not None:
        y = y * F.silu(z.to(acc))
    y = y.to(u.dtype)
    return (y, state) if return_last_state else y
