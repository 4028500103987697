"""Mamba sub-blocks: the bidirectional spiral scan over each frame, the scan along frames.

The scans themselves (Mamba layers, scan orders) come from :mod:`medsora.ssm`; this
file only decides which sequences are scanned and how the two directions are fused.
"""
from __future__ import annotations

import functools
from typing import Callable

import torch
from torch import nn

from medsora.backbone.subblock import SubBlock
from medsora.ssm import Mamba1Layer, Mamba2Layer, grid_to_seq, order_for_depth, seq_to_grid

__all__ = ["GatedFusion", "BidirectionalScan", "SpatialMamba", "TemporalMamba", "mamba_factory"]

LayerFactory = Callable[[], nn.Module]  # () -> Mamba layer mapping batch×L×D -> batch×L×D


def mamba_factory(cfg) -> LayerFactory:
    """The scan layer ``model.mamba`` names, with the ``model:`` settings (``d_state``, ``expand`` ...)."""
    if cfg.mamba_recompute not in ("full", "off"):
        raise ValueError(f"model.mamba_recompute={cfg.mamba_recompute!r} must be 'full' or 'off'")
    if cfg.mamba == "mamba2":
        return functools.partial(Mamba2Layer, cfg.hidden, d_state=cfg.d_state, headdim=cfg.headdim,
                                 expand=cfg.expand, scan_impl=cfg.scan_impl,
                                 recompute=cfg.mamba_recompute == "full")
    if cfg.mamba == "mamba1":
        return functools.partial(Mamba1Layer, cfg.hidden, d_state=cfg.d_state, expand=cfg.expand, rmsnorm=True,
                                 scan_impl=cfg.scan_impl)
    raise ValueError(f"model.mamba={cfg.mamba!r} must be 'mamba2' or 'mamba1'")


class GatedFusion(nn.Module):
    """``σ(W₁a + b₁) ⊙ a + σ(W₂b + b₂) ⊙ b``: MedSora's learned gate between two scans."""

    def __init__(self, hidden: int):
        super().__init__()
        self.gate_a = nn.Linear(hidden, hidden)
        self.gate_b = nn.Linear(hidden, hidden)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.gate_a(a)) * a + torch.sigmoid(self.gate_b(b)) * b


class BidirectionalScan(nn.Module):
    """A Mamba layer over ``seq: N×L×D``, optionally joined by a second one over the reversed sequence.

    The two directions have their own weights (as in Vision Mamba; MedSora's
    reference shares one layer between them): a reversed sequence is a different
    signal to the causal convolution and the selective scan. Unidirectional, the
    output at position i depends only on positions <= i.
    """

    def __init__(self, make_layer: LayerFactory, hidden: int, bidirectional: bool):
        super().__init__()
        self.forward_scan = make_layer()
        self.bidirectional = bidirectional
        if bidirectional:
            self.backward_scan = make_layer()
            self.fusion = GatedFusion(hidden)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        out = self.forward_scan(seq)
        if not self.bidirectional:
            return out
        if isinstance(self.backward_scan, Mamba2Layer):  # flips after in_proj: one saved input for both scans
            back = self.backward_scan(seq, reverse=True)
        else:
            back = self.backward_scan(seq.flip(1)).flip(1)
        return self.fusion(out, back)


class SpatialMamba(SubBlock):
    """Scan every frame's token grid in ``order`` (and its reverse), e.g. a spiral.

    ``order`` is a :func:`medsora.ssm.scan_order` name (``spiral_tr`` ...) chosen per
    layer by the model. With ``joint_frames`` all frames form one sequence (frame by
    frame, see :func:`medsora.ssm.grid_to_seq`), so information also flows across
    frames; otherwise frames never see each other here.
    """

    kind = "spatial_mamba"

    def __init__(self, hidden: int, make_layer: LayerFactory, order: str, bidirectional: bool, joint_frames: bool):
        super().__init__(hidden)
        self.order = order
        self.joint_frames = joint_frames
        self.scan = BidirectionalScan(make_layer, hidden, bidirectional)

    @classmethod
    def from_config(cls, cfg, layer_index: int, context_dim: int) -> "SpatialMamba":
        """Layer ``layer_index`` (0-based) scans the ``layer_index``-th order of the cycle when ``cycle_orders``."""
        order = order_for_depth(cfg.scan_order, layer_index) if cfg.cycle_orders else cfg.scan_order
        return cls(cfg.hidden, mamba_factory(cfg), order, cfg.bidirectional, cfg.joint_frames)

    def mix(self, h, context, context_mask):
        _, t, height, width, _ = h.shape
        seq = grid_to_seq(h, self.order, joint=self.joint_frames)
        return seq_to_grid(self.scan(seq), self.order, t, height, width, joint=self.joint_frames)

    def extra_repr(self) -> str:
        return f"order={self.order!r}, joint_frames={self.joint_frames}"


class TemporalMamba(SubBlock):
    """Scan each spatial position's sequence of ``T`` frames.

    Unidirectional (MedSora's choice) it is causal in time: frame k is updated from
    frames <= k only. ``bidirectional`` adds the reversed scan, fused by a learned gate,
    so every frame sees the whole clip.
    """

    kind = "temporal_mamba"

    def __init__(self, hidden: int, make_layer: LayerFactory, bidirectional: bool):
        super().__init__(hidden)
        self.scan = BidirectionalScan(make_layer, hidden, bidirectional)

    @classmethod
    def from_config(cls, cfg, layer_index: int, context_dim: int) -> "TemporalMamba":
        return cls(cfg.hidden, mamba_factory(cfg), cfg.temporal_bidirectional)

    def mix(self, h, context, context_mask):
        b, t, height, width, d = h.shape
        seq = h.permute(0, 2, 3, 1, 4).reshape(b * height * width, t, d)
        return self.scan(seq).view(b, height, width, t, d).permute(0, 3, 1, 2, 4)
