"""State-space scans: reference recurrences, pure-PyTorch chunked scans, optional CUDA kernels, scan orders.

Public API
----------
Scans (``mamba_ssm`` signatures and semantics):
    ``ssd(x, dt, A, B, C, chunk_size, D=None, z=None, dt_bias=None, dt_softplus=False,
    initial_states=None, return_final_states=False)`` — Mamba-2 SSD, x: b×l×h×p.
    ``selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
    return_last_state=False, initial_state=None)`` — Mamba-1 S6, u: b×d×l.
    ``ssd_ref`` / ``selective_scan_ref``: sequential ground truth (tests only).
    ``get_scan(kind, scan_impl, device)``, ``resolve_scan_impl(kind, scan_impl, device)``,
    ``check_scan_impl(kind, scan_impl)``: ``scan_impl`` ∈ ``SCAN_IMPLS`` = auto | torch | cuda | ref.
Layers (B×L×d_model -> B×L×d_model):
    ``Mamba2Layer(d_model, d_state=128, headdim=64, expand=2, d_conv=4, ngroups=1, chunk_size=64,
    scan_impl="auto")``, ``Mamba1Layer(d_model, d_state=16, d_conv=4, expand=2, dt_rank="auto",
    scan_impl="auto")``.
Orders (grids B×T×H×W×D):
    ``scan_order(name, h, w, t=None, device=None)``, ``inverse_order(perm)``,
    ``grid_to_seq(x, name, joint=False)``, ``seq_to_grid(seq, name, t, h, w, joint=False)``,
    ``order_for_depth(base_name, layer_index)``, ``SPIRAL_VARIANTS``, ``BASE_ORDERS``.
"""
from medsora.ssm.chunked_selective_scan import selective_scan
from medsora.ssm.chunked_ssd import ssd
from medsora.ssm.dispatch import SCAN_IMPLS, check_scan_impl, get_scan, resolve_scan_impl
from medsora.ssm.mamba1 import Mamba1Layer
from medsora.ssm.mamba2 import Mamba2Layer
from medsora.ssm.orders import (BASE_ORDERS, SPIRAL_VARIANTS, grid_to_seq, inverse_order, order_for_depth,
                                parse_order, scan_order, seq_to_grid)
from medsora.ssm.reference import selective_scan_ref, ssd_ref

__all__ = [
    "SCAN_IMPLS", "check_scan_impl", "get_scan", "resolve_scan_impl", "Mamba1Layer", "Mamba2Layer",
    "BASE_ORDERS", "SPIRAL_VARIANTS", "grid_to_seq", "inverse_order", "order_for_depth", "parse_order", "scan_order", "seq_to_grid",
    "selective_scan_ref", "ssd_ref", "selective_scan", "ssd",
]
