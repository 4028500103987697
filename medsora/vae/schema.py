"""Schema of ``vae:`` — the frequency-compensated 3D causal VAE and its training losses."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from medsora.config.fields import choice


@dataclass
class VAEConfig:
    ckpt: Optional[str] = None  # trained VAEModule checkpoint (or diffusers VAE folder) used by the diffusion stage
    pretrained: Optional[str] = None  # local diffusers folder of a CogVideoX VAE (or a pipeline folder with vae/)
    train_base: bool = True  # false: the base VAE is frozen, only the compensation branches train
    # Architecture of the base (must match the pretrained folder's config.json when `pretrained` is set).
    latent_channels: int = 16
    block_out_channels: List[int] = field(default_factory=lambda: [128, 256, 256, 512])
    layers_per_block: int = 3
    norm_num_groups: int = 32
    # "frame": GroupNorm statistics per frame (strictly causal, chunking exact; for training from scratch);
    # "clip": diffusers' statistics over the whole clip (what CogVideoX was trained with);
    # "auto": "clip" when `pretrained` is set (a pretrained base keeps the statistics it was trained
    # with), else "frame".
    norm: str = choice("auto", "auto", "frame", "clip")
    freq_comp: bool = True
    freq_kind: str = choice("haar", "haar", "fft")
    freq_hidden: int = 64
    freq_dropout: float = 0.2
    grad_checkpointing: bool = False
    scaling_factor: Optional[float] = None  # fixed latent scale; None = 1/std of training latents (measured)
    scale_ema: float = 0.99  # decay of the running latent moments behind the measured scale
    lr: float = 1e-4
    kl_weight: float = 1e-6  # KL averaged per latent element
    ffl_weight: float = 0.1
    lpips_weight: float = 0.1
    lpips: str = choice("optional", "optional", "required", "off")  # vae.lpips=off works unquoted (config maps YAML's false to 'off')
    lpips_weights: Optional[str] = None  # torchvision AlexNet file; None = torch hub cache
    temporal_weight: float = 0.0
    chunk_frames: int = 0  # 0 = full pass; else encode/decode in chunks of this many latent frames
    tile_size: int = 0  # 0 = no spatial tiling; else pixel tile size (multiple of 8)
    tile_overlap: float = 0.25  # fraction of a tile shared with its neighbour (blended)
    log_videos: int = 2  # validation clips logged as input|reconstruction GIFs to TensorBoard
