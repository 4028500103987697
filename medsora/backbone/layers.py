"""From a block pattern (``model.blocks``) to the sub-blocks of one layer."""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Type

from torch import nn

from medsora.backbone.attention import CrossAttention, FullAttention, LocalAttention, SpatialAttention, TemporalAttention
from medsora.backbone.mamba_blocks import SpatialMamba, TemporalMamba
from medsora.backbone.raster_attention import RasterWindowAttention
from medsora.backbone.slice_mamba import SliceSpiralMamba
from medsora.backbone.subblock import MLPBlock, SubBlock
from medsora.ssm import Mamba1Layer, Mamba2Layer

__all__ = ["MedSoraLayer", "SUBBLOCKS", "build_layer", "build_subblock", "is_mamba_layer"]

SUBBLOCKS: Dict[str, Type[SubBlock]] = {
    cls.kind: cls
    for cls in (LocalAttention, SpatialMamba, TemporalMamba, FullAttention, SpatialAttention, TemporalAttention,
                CrossAttention)
}
"""``model.blocks`` name -> sub-block class (each builds itself with ``from_config``)."""

FORMS: Dict[tuple, Type[SubBlock]] = {
    ("local_attn", "local_attn", "raster1d"): RasterWindowAttention,
    ("spatial_mamba", "scan_geometry", "reference"): SliceSpiralMamba,
}
"""Alternative forms of a kind, chosen by a ``model:`` setting: (kind, setting, value) -> class (the reference's)."""


def subblock_class(kind: str, cfg) -> Type[SubBlock]:
    """The class that builds ``kind`` under these settings (``model.local_attn``, ``model.scan_geometry``)."""
    for (form_kind, setting, value), cls in FORMS.items():
        if form_kind == kind and getattr(cfg, setting) == value:
            return cls
    return SUBBLOCKS[kind]


def is_mamba_layer(module: nn.Module) -> bool:
    """True for the scan layers whose initialisation belongs to :mod:`medsora.ssm`."""
    return isinstance(module, (Mamba1Layer, Mamba2Layer))


def build_subblock(kind: str, layer_index: int, cfg, context_dim: int) -> SubBlock:
    """One sub-block of ``kind`` for layer ``layer_index`` (0-based; it picks the scan order).

    ``cfg`` is the ``model:`` section (:class:`medsora.backbone.schema.ModelConfig`), handed
    down whole: the sub-block class reads the settings it needs.
    """
    if kind not in SUBBLOCKS:
        raise ValueError(f"unknown block {kind!r} in model.blocks; expected one of {list(SUBBLOCKS)}")
    return subblock_class(kind, cfg).from_config(cfg, layer_index, context_dim)


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


def build_layer(cfg, layer_index: int, context_dim: int) -> MedSoraLayer:
    """The sub-blocks of ``cfg.blocks`` in order, plus the DiT MLP sub-block when ``cfg.mlp_ratio > 0``."""
    blocks = [build_subblock(kind, layer_index, cfg, context_dim) for kind in cfg.blocks]
    if cfg.mlp_ratio > 0:
        blocks.append(MLPBlock.from_config(cfg, layer_index, context_dim))
    return MedSoraLayer(blocks)
