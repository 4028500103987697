"""State-space scans: reference recurrences, pure-PyTorch chunked scans, optional CUDA kernels, scan orders.

Public API
----------
Scans (``mamba_ssm`` signatures, positional order and semantics):
    ``ssd(x, dt, A, B, C, chunk_size, D=None, z=None, dt_bias=None, initial_states=None, seq_idx=None,
    cu_seqlens=None, dt_softplus=False, dt_limit=(0, inf), return_final_states=False,
    return_varlen_states=False, state_dtype=None)`` — Mamba-2 SSD as ``mamba_chunk_scan_combined``, x: b×l×h×p.
    ``selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
    return_last_state=False, initial_state=None)`` — Mamba-1 S6 as ``selective_scan_fn``, u: b×d×l.
    ``ssd_ref`` / ``selective_scan_ref``: sequential ground truth (tests only).
    ``seq_idx_from_cu_seqlens(cu_seqlens, seqlen)``: packed variable-length sequences.
    ``get_scan(kind, scan_impl, device)``, ``resolve_scan_impl(kind, scan_impl, device)``,
    ``check_scan_impl(kind, scan_impl)``: ``scan_impl`` ∈ ``SCAN_IMPLS`` = auto | torch | cuda | ref.
Layers (B×L×d_model -> B×L×d_model), ``mamba_ssm``'s positional order and state-dict names:
    ``Mamba2Layer(d_model, d_state=128, d_conv=4, conv_init=None, expand=2, headdim=64, d_ssm=None,
    ngroups=1, A_init_range=(1, 16), D_has_hdim=False, rmsnorm=True, norm_before_gate=False, …,
    chunk_size=64, …, layer_idx=None, …, *, scan_impl="auto")``, ``Mamba1Layer(d_model, d_state=16,
    d_conv=4, expand=2, dt_rank="auto", …, layer_idx=None, device=None, dtype=None, *, rmsnorm=False,
    scan_impl="auto")``; both with ``step()``, ``allocate_inference_cache()`` and
    ``forward(..., inference_params=InferenceParams(...))`` (:mod:`medsora.ssm.inference`).
Orders (grids B×T×H×W×D):
    ``scan_order(name, h, w, t=None, device=None)``, ``inverse_order(perm)``,
    ``grid_to_seq(x, name, joint=False)``, ``seq_to_grid(seq, name, t, h, w, joint=False)``,
    ``order_for_depth(base_name, layer_index)``, ``SPIRAL_VARIANTS``, ``BASE_ORDERS``.
"""
from medsora.ssm.chunked_selective_scan import selective_scan
from medsora.ssm.chunked_ssd import ssd
from medsora.ssm.dispatch import SCAN_IMPLS, check_scan_impl, get_scan, resolve_scan_impl
from medsora.ssm.inference import InferenceParams
from medsora.ssm.mamba1 import Mamba1Layer
from medsora.ssm.mamba2 import Mamba2Layer
from medsora.ssm.packing import seq_idx_from_cu_seqlens
from medsora.ssm.orders import (BASE_ORDERS, SPIRAL_VARIANTS, grid_to_seq, inverse_order, order_for_depth,
                                parse_order, scan_order, seq_to_grid)
from medsora.ssm.reference import selective_scan_ref, ssd_ref

__all__ = [
    "SCAN_IMPLS", "InferenceParams", "check_scan_impl", "get_scan", "resolve_scan_impl", "Mamba1Layer", "Mamba2Layer",
    "BASE_ORDERS", "SPIRAL_VARIANTS", "grid_to_seq", "inverse_order", "order_for_depth", "parse_order", "scan_order", "seq_to_grid",
    "selective_scan_ref", "ssd_ref", "selective_scan", "ssd", "seq_idx_from_cu_seqlens",
]
