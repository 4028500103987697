"""Which frozen VAE a diffusion run encodes with (``vae.kind``), and what follows from it.

* ``causal`` — our frequency-compensated 3D causal VAE from a trained checkpoint (``vae.ckpt``):
  4x temporal stride, ``F = 1 + 4k`` frames -> ``1 + k`` latent frames;
* ``sd`` — a 2-D ``AutoencoderKL`` from a local folder (``vae.pretrained``) applied frame by frame
  (Bora, Open-Sora 1.0): temporal stride 1, ``T = F``, latent scale 0.18215 unless ``vae.scaling_factor``.

Everything that maps clip frames to latent frames asks :func:`temporal_stride` (or the loaded VAE's
``temporal_stride``) instead of assuming 4.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Optional

__all__ = ["temporal_stride", "latent_frames", "load_frozen_vae", "vae_identity", "has_vae"]


def temporal_stride(vae_cfg) -> int:
    """Pixel frames per latent frame (after the first) of the ``vae:`` section's VAE."""
    return 1 if str(vae_cfg.kind) == "sd" else 4


def latent_frames(vae_cfg, num_frames: int) -> int:
    """Latent frames ``T`` of a ``num_frames`` clip: ``1 + (F-1)/s``."""
    return 1 + (int(num_frames) - 1) // temporal_stride(vae_cfg)


def has_vae(vae_cfg) -> bool:
    """Whether the run names a VAE to encode/decode with (``vae.ckpt``, or ``vae.pretrained`` for ``sd``)."""
    return bool(vae_cfg.pretrained if str(vae_cfg.kind) == "sd" else vae_cfg.ckpt)


def _folder_sha256(folder: Path) -> str:
    """SHA-256 over a diffusers folder's config and weight files (names and contents, sorted)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".json", ".safetensors", ".bin")):
        digest.update(str(path.relative_to(folder)).encode())
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def vae_identity(vae_cfg) -> Optional[str]:
    """SHA-256 of the VAE the config names (checkpoint file or ``sd`` folder); None when it is not here."""
    from medsora.flow.raft_weights import file_sha256

    if str(vae_cfg.kind) == "sd":
        if vae_cfg.pretrained and Path(str(vae_cfg.pretrained)).expanduser().is_dir():
            return _folder_sha256(Path(str(vae_cfg.pretrained)).expanduser())
        return None
    if vae_cfg.ckpt and Path(str(vae_cfg.ckpt)).expanduser().is_file():
        return file_sha256(Path(str(vae_cfg.ckpt)).expanduser())
    return None


def load_frozen_vae(vae_cfg):
    """``(vae, scaling_factor)``: the frozen VAE of a diffusion run, in eval mode.

    Raises:
        ValueError: ``vae.kind: sd`` without ``vae.pretrained``. FileNotFoundError: no VAE in that folder.
    """
    if str(vae_cfg.kind) == "sd":
        from medsora.vae.frame_vae import SD_SCALING_FACTOR, FrameVAE

        if not vae_cfg.pretrained:
            raise ValueError("vae=sd needs vae.pretrained=DIR: a local diffusers AutoencoderKL folder "
                             "(e.g. stabilityai/sd-vae-ft-ema, as Bora and Open-Sora 1.0 use)")
        vae = FrameVAE.from_pretrained(str(vae_cfg.pretrained), chunk_frames=int(vae_cfg.chunk_frames))
        factor = vae_cfg.scaling_factor if vae_cfg.scaling_factor is not None else SD_SCALING_FACTOR
        return vae, float(factor)
    from medsora.vae.checkpoint import load_vae

    return load_vae(str(vae_cfg.ckpt))
