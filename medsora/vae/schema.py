"""Schema of ``vae:`` — the frequency-compensated 3D causal VAE and its training losses."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, List, Optional

from medsora.config.fields import bounded, choice, path_to


@dataclass
class VAEConfig:
    # "causal": our 3D causal VAE from vae.ckpt (4x temporal stride); "sd": a 2-D diffusers AutoencoderKL from
    # the local folder vae.pretrained, frame by frame (Bora / Open-Sora 1.0; T = F, scale 0.18215), medsora.vae.select
    kind: str = choice("causal", "causal", "sd")
    ckpt: Optional[str] = path_to("any")  # trained VAEModule checkpoint (or diffusers VAE folder) used by the diffusion stage
    pretrained: Optional[str] = path_to("dir")  # local diffusers folder of a CogVideoX VAE (or a pipeline folder with vae/)
    train_base: bool = True  # false: the base VAE is frozen, only the compensation branches train
    # Architecture of the base (must match the pretrained folder's config.json when `pretrained` is set).
    latent_channels: int = bounded(16, 1, 1024)
    block_out_channels: List[int] = field(default_factory=lambda: [128, 256, 256, 512])
    layers_per_block: int = bounded(3, 1, 64)
    norm_num_groups: int = bounded(32, 1, 1024)
    # "frame": GroupNorm statistics per frame (strictly causal, chunking exact; for training from scratch);
    # "clip": diffusers' statistics over the whole clip (what CogVideoX was trained with);
    # "auto": "clip" when `pretrained` is set (a pretrained base keeps the statistics it was trained
    # with), else "frame".
    norm: str = choice("auto", "auto", "frame", "clip")
    # the decoder's spatial 2× upsampling before each up-block conv: diffusers' "nearest" (CogVideoX), or
    # "bilinear" (smooth from the first step: a briefly trained decoder draws ramps, not 8×8 blocks)
    upsample: str = choice("nearest", "nearest", "bilinear")
    # non-parametric shortcuts (DC-AE's residual autoencoding, medsora.vae.shortcut): the latent cells' mean
    # colour rides in the first 3 latent channels and comes back bilinearly upsampled, so the networks learn
    # only the residual; for VAEs trained from scratch (a pretrained CogVideoX base never saw it)
    shortcut: bool = False
    freq_comp: bool = True
    freq_kind: str = choice("haar", "haar", "fft")
    freq_hidden: int = bounded(64, 1, 65536)
    freq_dropout: float = bounded(0.2, 0.0, 0.99)
    grad_checkpointing: bool = False
    scaling_factor: Optional[float] = bounded(None, 1e-12)  # fixed latent scale; None = 1/std of training latents (measured)
    scale_ema: float = bounded(0.99, 0.0, 0.999999)  # decay of the running latent moments behind the measured scale
    lr: float = bounded(1e-4, 0.0, 1e3)
    kl_weight: float = bounded(1e-6, 0.0)  # KL averaged per latent element
    ffl_weight: float = bounded(0.1, 0.0)
    lpips_weight: float = bounded(0.1, 0.0)
    lpips: str = choice("optional", "optional", "required", "off")  # vae.lpips=off works unquoted (config maps YAML's false to 'off')
    lpips_weights: Optional[str] = path_to("file")  # torchvision AlexNet file; None = torch hub cache
    temporal_weight: float = bounded(0.0, 0.0)
    chunk_frames: int = bounded(0, 0, 4096)  # 0 = full pass; else encode/decode in chunks of this many latent frames
    tile_size: int = bounded(0, 0, 65536)  # 0 = no spatial tiling; else pixel tile size (multiple of 8)
    tile_overlap: float = bounded(0.25, 0.0, 0.9)  # fraction of a tile shared with its neighbour (blended)
    log_videos: int = bounded(2, 0, 64)  # validation clips logged as input|reconstruction GIFs to TensorBoard

    @staticmethod
    def checks(c) -> Iterator[tuple[str, str]]:
        """Rules between fields (bounds and choices are in the field definitions)."""
        widths = list(c.block_out_channels)
        if not widths or any(w < 1 or w % c.norm_num_groups for w in widths):
            yield "block_out_channels", f"must be positive multiples of vae.norm_num_groups = {c.norm_num_groups}"
        if c.shortcut and c.latent_channels < 3:
            yield "shortcut", f"carries colour in 3 latent channels: vae.latent_channels = {c.latent_channels} is too few"
        if c.tile_size % 8:
            yield "tile_size", "must be a multiple of 8 (0 = no tiling)"
