"""Schema of ``align:`` — optical-flow representation alignment (OFRA)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from medsora.schema_fields import choice


@dataclass
class TeacherConfig:
    arch: str = choice("raft_small", "raft_small", "raft_large")
    weights: str = "default"  # "default" (torchvision enum, local cache), a file path, or "random"
    iters: int = 12
    encoder: Optional[str] = None  # local image encoder for target=flow_image


@dataclass
class AlignConfig:
    enabled: bool = True
    weight: float = 0.1
    target: str = choice("raft_motion", "raft_motion", "flow", "flow_image")
    depth: int = 1  # tap hidden states after this layer (1-based)
    tap: str = choice("spatial_mamba", *("local_attn", "spatial_mamba", "temporal_mamba", "full_attn", "spatial_attn", "temporal_attn", "cross_attn"))
    loss: str = choice("pearson", "pearson", "cosine")
    timestep_weighting: bool = True
    margin: float = 0.0
    projector_dim: int = 256
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
