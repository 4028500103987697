"""Schema of ``model:`` — the spatio-temporal Mamba diffusion backbone."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

from medsora.schema_fields import choice

BLOCK_TYPES = (
    "local_attn", "spatial_mamba", "temporal_mamba",
    "full_attn", "spatial_attn", "temporal_attn", "cross_attn",
)


@dataclass
class ModelConfig:
    preset: str = choice("tiny", "tiny", "medsora_s", "medsora_b", "medsora_l", "medsora_xl", "custom")
    blocks: List[str] = choice(["local_attn", "spatial_mamba", "temporal_mamba"], *BLOCK_TYPES)
    depth: int = 2
    hidden: int = 64
    heads: int = 4
    patch: int = 2
    mlp_ratio: float = 4.0
    d_state: int = 16
    headdim: int = 16
    expand: int = 2
    mamba: str = choice("mamba2", "mamba2", "mamba1")
    scan_order: str = choice("spiral", "spiral", "spiral_ccw", "raster", "zigzag")
    cycle_orders: bool = True
    bidirectional: bool = True
    joint_frames: bool = False
    window: int = 8
    window_frames: int = 0  # local attention looks this many frames back/forward
    learn_sigma: bool = False
    grad_checkpointing: bool = False
    scan_impl: str = choice("auto", "auto", "torch", "cuda", "ref")
