"""Shape checks shared by every scan implementation, with errors that name the expected layout."""
from __future__ import annotations

import torch


def _shape(t) -> tuple:
    return tuple(t.shape) if isinstance(t, torch.Tensor) else ()


def _need(cond: bool, what: str, expected: str, got) -> None:
    if not cond:
        raise ValueError(f"{what}: expected {expected}, got shape {_shape(got)}")


def check_ssd_inputs(x, dt, A, B, C, D=None, z=None, dt_bias=None, initial_states=None, seq_idx=None,
                     cu_seqlens=None, return_varlen_states=False) -> None:
    """Validate SSD inputs (x: b×l×h×p, dt: b×l×h, A: h, B/C: b×l×g×n, D: h or h×p, states b×h×p×n,
    seq_idx b×l integers, cu_seqlens k+1 integers). Shapes and dtypes only: nothing is read from a
    tensor's values (no host synchronisation)."""
    _need(x.dim() == 4, "ssd x", "b×l×h×p (4 dims)", x)
    b, l, h, p = x.shape
    _need(dt.shape == (b, l, h), "ssd dt", f"b×l×h = {(b, l, h)}", dt)
    _need(A.shape == (h,), "ssd A", f"one scalar per head ({h},)", A)
    _need(B.dim() == 4 and B.shape[:2] == (b, l), "ssd B", f"b×l×g×n with b×l = {(b, l)}", B)
    _need(C.shape == B.shape, "ssd C", f"the shape of B {tuple(B.shape)}", C)
    g = B.shape[2]
    if g < 1 or h % g:
        raise ValueError(f"ssd: the number of heads ({h}) must be a multiple of the number of B/C groups ({g})")
    if D is not None:
        _need(D.shape in ((h,), (h, p)), "ssd D", f"({h},) or ({h}, {p})", D)
    if z is not None:
        _need(z.shape == x.shape, "ssd z", f"the shape of x {tuple(x.shape)}", z)
    if dt_bias is not None:
        _need(dt_bias.shape == (h,), "ssd dt_bias", f"({h},)", dt_bias)
    if initial_states is not None:
        _need(initial_states.shape == (b, h, p, B.shape[3]), "ssd initial_states",
              f"b×h×p×n = {(b, h, p, B.shape[3])}", initial_states)
    if seq_idx is not None:
        _need(isinstance(seq_idx, torch.Tensor) and seq_idx.shape == (b, l) and not seq_idx.is_floating_point(),
              "ssd seq_idx", f"integers b×l = {(b, l)}", seq_idx)
    if return_varlen_states:
        if cu_seqlens is None:
            raise ValueError("ssd: return_varlen_states=True needs cu_seqlens (cumulative sequence lengths)")
        _need(cu_seqlens.dim() == 1 and cu_seqlens.numel() >= 2 and not cu_seqlens.is_floating_point(),
              "ssd cu_seqlens", "integers (k+1,) starting at 0", cu_seqlens)
        if b != 1:
            raise ValueError(f"ssd: return_varlen_states packs sequences into one row: batch must be 1, got {b}")


def check_selective_scan_inputs(u, delta, A, B, C, D=None, z=None, delta_bias=None, initial_state=None) -> None:
    """Validate S6 inputs (u/delta: b×d×l, A: d×n, B/C: b×n×l or b×g×n×l, D: d, state b×d×n)."""
    _need(u.dim() == 3, "selective_scan u", "b×d×l (3 dims)", u)
    b, d, l = u.shape
    _need(delta.shape == u.shape, "selective_scan delta", f"the shape of u {(b, d, l)}", delta)
    _need(A.dim() == 2 and A.shape[0] == d, "selective_scan A", f"d×n with d = {d}", A)
    n = A.shape[1]
    for name, t in (("B", B), ("C", C)):
        ok = (t.dim() == 3 and t.shape == (b, n, l)) or (t.dim() == 4 and t.shape[0] == b and t.shape[2:] == (n, l))
        _need(ok, f"selective_scan {name}", f"b×n×l = {(b, n, l)} or b×g×n×l", t)
        if t.dim() == 4 and d % t.shape[1]:
            raise ValueError(f"selective_scan: channels d={d} must be a multiple of the {name} groups ({t.shape[1]})")
    if D is not None:
        _need(D.shape == (d,), "selective_scan D", f"({d},)", D)
    if z is not None:
        _need(z.shape == u.shape, "selective_scan z", f"the shape of u {(b, d, l)}", z)
    if delta_bias is not None:
        _need(delta_bias.shape == (d,), "selective_scan delta_bias", f"({d},)", delta_bias)
    if initial_state is not None:
        _need(initial_state.shape == (b, d, n), "selective_scan initial_state", f"b×d×n = {(b, d, n)}", initial_state)
