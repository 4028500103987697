"""Schema of ``vae:`` — the frequency-compensated 3D causal VAE and its training losses."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from medsora.schema_fields import choice


@dataclass
class VAEConfig:
    ckpt: Optional[str] = None  # trained VAEModule checkpoint used by the diffusion stage
    pretrained: Optional[str] = None  # local diffusers folder of a CogVideoX VAE
    train_base: bool = True
    latent_channels: int = 16
    block_out_channels: List[int] = field(default_factory=lambda: [128, 256, 256, 512])
    layers_per_block: int = 3
    norm_num_groups: int = 32
    freq_comp: bool = True
    freq_kind: str = choice("haar", "haar", "fft")
    freq_hidden: int = 64
    freq_dropout: float = 0.2
    scaling_factor: Optional[float] = None  # measured on training data when None
    lr: float = 1e-4
    kl_weight: float = 1e-6
    ffl_weight: float = 0.1
    lpips_weight: float = 0.1
    lpips: str = choice("optional", "optional", "required", "off")
    lpips_weights: Optional[str] = None
    temporal_weight: float = 0.0
    chunk_frames: int = 0  # 0 = full pass; else encode/decode in chunks of latent frames
    tile_size: int = 0  # 0 = no spatial tiling; else pixel tile size
    tile_overlap: float = 0.25
