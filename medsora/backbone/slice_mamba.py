"""MedSora's reference spatial-scan geometry: spirals over frame×width and frame×height slices.

The reference does not scan each frame's ``H×W`` grid. It cuts the latent video into two
families of 2-D slices that *mix frames*: for every row ``y`` the ``T×W`` slice
``x[:, :, y, :]`` and for every column ``x`` the ``T×H`` slice ``x[:, :, :, x]``. Each slice is
scanned in a spiral order (over its frame×width or frame×height grid) and in the reverse of that
order by one Mamba layer shared by both directions, the two directions are summed, and a learned
gate (:class:`~medsora.backbone.mamba_blocks.GatedFusion`) fuses the two slice families. One layer
per family (shared by its two directions) is our reading of "one Mamba shared by both directions".

Selected with ``model.scan_geometry: reference``; ``frame`` (ours) is
:class:`~medsora.backbone.mamba_blocks.SpatialMamba`.
"""
from __future__ import annotations

import torch

from medsora.backbone.mamba_blocks import GatedFusion, LayerFactory, mamba_factory
from medsora.backbone.subblock import SubBlock
from medsora.ssm import grid_to_seq, order_for_depth, seq_to_grid

__all__ = ["SliceSpiralMamba"]


class SliceSpiralMamba(SubBlock):
    """Reference spatial Mamba over frame×width and frame×height slices (see the module docstring)."""

    kind = "spatial_mamba"

    def __init__(self, hidden: int, make_layer: LayerFactory, order: str):
        super().__init__(hidden)
        self.order = order
        self.scan_tw = make_layer()  # slices T×W (one per row)
        self.scan_th = make_layer()  # slices T×H (one per column)
        self.fusion = GatedFusion(hidden)

    @classmethod
    def from_config(cls, cfg, layer_index: int, context_dim: int) -> "SliceSpiralMamba":
        """As :meth:`SpatialMamba.from_config`: the order cycles with depth when ``cycle_orders``."""
        order = order_for_depth(cfg.scan_order, layer_index) if cfg.cycle_orders else cfg.scan_order
        return cls(cfg.hidden, mamba_factory(cfg), order)

    def _both_directions(self, layer, seq: torch.Tensor) -> torch.Tensor:
        return layer(seq) + layer(seq.flip(1)).flip(1)

    def mix(self, h, context, context_mask):
        b, t, height, width, d = h.shape
        # rows: B×H×T×W×D, each (b, y) a T×W grid scanned as one sequence
        rows = h.permute(0, 2, 1, 3, 4).contiguous()
        seq = grid_to_seq(rows, self.order)
        tw = seq_to_grid(self._both_directions(self.scan_tw, seq), self.order, height, t, width)
        tw = tw.view(b, height, t, width, d).permute(0, 2, 1, 3, 4)
        # columns: B×W×T×H×D, each (b, x) a T×H grid
        cols = h.permute(0, 3, 1, 2, 4).contiguous()
        seq = grid_to_seq(cols, self.order)
        th = seq_to_grid(self._both_directions(self.scan_th, seq), self.order, width, t, height)
        th = th.view(b, width, t, height, d).permute(0, 2, 3, 1, 4)
        return self.fusion(tw, th)

    def extra_repr(self) -> str:
        return f"order={self.order!r}, geometry='reference'"
