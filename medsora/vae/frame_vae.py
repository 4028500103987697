"""``vae=sd``: a 2-D image VAE (diffusers ``AutoencoderKL``) applied frame by frame.

Bora and Open-Sora 1.0 encode each frame with Stability's SD VAE (``sd-vae-ft-ema``): 8x spatial,
no temporal compression (``T = F`` latent frames), latents scaled by 0.18215. Frames are folded
into the batch (``B×3×F×H×W -> (B·F)×3×H×W``), encoded in micro-batches of ``chunk_frames``
frames to bound memory, and unfolded again; the posterior is diffusers' own
``DiagonalGaussianDistribution`` over the unfolded moments, so ``.mean``, ``.std``, ``.sample()``
and ``.mode()`` behave as for the causal VAE.
"""
from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from torch import nn

__all__ = ["FrameVAE", "SD_SCALING_FACTOR", "save_tiny_sd_vae", "sd_folder"]

SD_SCALING_FACTOR = 0.18215  # Stable Diffusion 1.x / sd-vae-ft-ema; Bora eq. for z^V


def sd_folder(path: str) -> tuple[Path, str | None]:
    """(folder, subfolder) of a local ``AutoencoderKL``: the folder itself or a pipeline's ``vae/``."""
    root = Path(str(path)).expanduser()
    if (root / "config.json").is_file():
        return root, None
    if (root / "vae" / "config.json").is_file():
        return root, "vae"
    raise FileNotFoundError(
        f"vae.pretrained = '{path}': no diffusers AutoencoderKL there (expected {root}/config.json or "
        f"{root}/vae/config.json). vae=sd needs the SD VAE Bora and Open-Sora 1.0 use: on a machine with internet "
        "`huggingface-cli download stabilityai/sd-vae-ft-ema --local-dir DIR`, copy DIR here and set vae.pretrained=DIR"
    )


class FrameVAE(nn.Module):
    """``AutoencoderKL`` over the frames of a video.

    Args:
        base: the image VAE.
        chunk_frames: frames per encode/decode pass (0 = all frames of the batch at once).
    """

    temporal_stride = 1  # one latent frame per frame

    def __init__(self, base: AutoencoderKL, chunk_frames: int = 0):
        super().__init__()
        self.base = base
        self.chunk_frames = int(chunk_frames)
        self.spatial_stride = 2 ** (len(base.config.block_out_channels) - 1)

    @classmethod
    def from_pretrained(cls, path: str, chunk_frames: int = 0) -> "FrameVAE":
        """The VAE of a local diffusers folder (``vae.pretrained``), frozen, in eval mode."""
        folder, subfolder = sd_folder(path)
        base = AutoencoderKL.from_pretrained(folder, subfolder=subfolder, local_files_only=True)
        return cls(base, chunk_frames).eval().requires_grad_(False)

    @property
    def latent_channels(self) -> int:
        return int(self.base.config.latent_channels)

    def set_chunking(self, chunk_frames: int = 0, tile_size: int = 0, tile_overlap: float = 0.25) -> None:
        """Frames per pass; ``tile_size > 0`` turns on diffusers' spatial tiling of each frame."""
        self.chunk_frames = int(chunk_frames)
        if tile_size:
            self.base.enable_tiling()

    def _passes(self, frames: torch.Tensor, fn) -> torch.Tensor:
        step = self.chunk_frames or frames.shape[0]
        return torch.cat([fn(frames[i:i + step]) for i in range(0, frames.shape[0], step)])

    def encode(self, video: torch.Tensor) -> DiagonalGaussianDistribution:
        """``video: B×3×F×H×W`` in ``[-1, 1]`` -> posterior over ``B×C×F×(H/8)×(W/8)`` (unscaled)."""
        if video.ndim != 5 or video.shape[1] != self.base.config.in_channels:
            raise ValueError(f"expected a video B×{self.base.config.in_channels}×F×H×W, got {tuple(video.shape)}")
        b, c, f, h, w = video.shape
        s = self.spatial_stride
        if h % s or w % s:
            raise ValueError(f"video is {h}×{w}; height and width must be multiples of {s} for vae=sd (data.size)")
        frames = video.transpose(1, 2).reshape(b * f, c, h, w)
        moments = self._passes(frames, lambda x: self.base.encode(x).latent_dist.parameters)
        moments = moments.reshape(b, f, *moments.shape[1:]).transpose(1, 2)
        return DiagonalGaussianDistribution(moments)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``z: B×C×T×h×w`` (unscaled latents) -> ``B×3×T×8h×8w``."""
        if z.ndim != 5 or z.shape[1] != self.latent_channels:
            raise ValueError(f"expected latents B×{self.latent_channels}×T×h×w, got shape {tuple(z.shape)}")
        b, c, t, h, w = z.shape
        frames = self._passes(z.transpose(1, 2).reshape(b * t, c, h, w), lambda x: self.base.decode(x).sample)
        return frames.reshape(b, t, *frames.shape[1:]).transpose(1, 2)


def save_tiny_sd_vae(folder, seed: int = 0) -> Path:
    """A tiny random ``AutoencoderKL`` with SD's layout (4 blocks: 8x spatial, 4 latent channels) saved with
    ``save_pretrained`` into ``folder`` — for tests and CPU runs of ``vae=sd`` (``vae.pretrained=folder``)."""
    torch.manual_seed(seed)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8, 8, 8),
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        layers_per_block=1, norm_num_groups=4, sample_size=32)
    vae.save_pretrained(folder)
    return Path(folder)
