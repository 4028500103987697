"""From a block pattern (``model.blocks``) to the sub-blocks of one layer."""
from __future__ import annotations

import functools
from typing import Optional, Sequence

from torch import nn

from medsora.backbone.attention import CrossAttention, FullAttention, LocalAttention, SpatialAttention, TemporalAttention
from medsora.backbone.mamba_blocks import SpatialMamba, TemporalMamba
from medsora.backbone.subblock import MLPBlock, SubBlock
from medsora.ssm import Mamba1Layer, Mamba2Layer, order_for_depth

__all__ = ["MedSoraLayer", "build_layer", "build_subblock", "is_mamba_layer"]


def is_mamba_layer(module: nn.Module) -> bool:
    """True for the scan layers whose initialisation belongs to :mod:`medsora.ssm`."""
    return isinstance(module, (Mamba1Layer, Mamba2Layer))


def _mamba_factory(hidden: int, mamba: str, d_state: int, headdim: int, expand: int, scan_impl: str):
    if mamba == "mamba2":
        return functools.partial(Mamba2Layer, hidden, d_state=d_state, headdim=headdim, expand=expand,
                                 scan_impl=scan_impl)
    if mamba == "mamba1":
        return functools.partial(Mamba1Layer, hidden, d_state=d_state, expand=expand, rmsnorm=True,
                                 scan_impl=scan_impl)
    raise ValueError(f"model.mamba={mamba!r} must be 'mamba2' or 'mamba1'")


def build_subblock(kind: str, layer_index: int, *, hidden: int, heads: int, d_state: int, headdim: int,
                   expand: int, mamba: str, scan_order: str, cycle_orders: bool, bidirectional: bool,
                   temporal_bidirectional: bool, joint_frames: bool, window: int, window_frames: int,
                   scan_impl: str, context_dim: int) -> SubBlock:
    """One sub-block of ``kind`` for layer ``layer_index`` (0-based; it picks the scan order)."""
    make_mamba = _mamba_factory(hidden, mamba, d_state, headdim, expand, scan_impl)
    if kind == "local_attn":
        return LocalAttention(hidden, heads, window, window_frames)
    if kind == "spatial_mamba":
        order = order_for_depth(scan_order, layer_index) if cycle_orders else scan_order
        return SpatialMamba(hidden, make_mamba, order, bidirectional, joint_frames)
    if kind == "temporal_mamba":
        return TemporalMamba(hidden, make_mamba, temporal_bidirectional)
    if kind == "full_attn":
        return FullAttention(hidden, heads)
    if kind == "spatial_attn":
        return SpatialAttention(hidden, heads)
    if kind == "temporal_attn":
        return TemporalAttention(hidden, heads)
    if kind == "cross_attn":
        return CrossAttention(hidden, heads, context_dim)
    raise ValueError(f"unknown block {kind!r} in model.blocks")


class MedSoraLayer(nn.Module):
    """One repetition of the block pattern: sub-blocks applied in order.

    ``forward(x, c, context, context_mask, tap)`` returns ``(x, tapped)`` where
    ``tapped`` is the grid right after sub-block number ``tap`` (None when ``tap`` is None).
    """

    def __init__(self, blocks: Sequence[SubBlock]):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x, c, context=None, context_mask=None, tap: Optional[int] = None):
        tapped = None
        for j, block in enumerate(self.blocks):
            x = block(x, c, context, context_mask)
            if j == tap:
                tapped = x
        return x, tapped


def build_layer(pattern: Sequence[str], layer_index: int, *, mlp_ratio: float, **settings) -> MedSoraLayer:
    """The sub-blocks of ``pattern`` in order, plus the DiT MLP sub-block when ``mlp_ratio > 0``.

    ``settings`` are the keyword arguments of :func:`build_subblock`.
    """
    blocks = [build_subblock(kind, layer_index, **settings) for kind in pattern]
    if mlp_ratio > 0:
        blocks.append(MLPBlock(settings["hidden"], mlp_ratio))
    return MedSoraLayer(blocks)
