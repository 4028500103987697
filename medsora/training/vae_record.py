"""Which VAE a diffusion model's latents belong to: recorded in every checkpoint, checked when loading.

A diffusion model learns the latent space of one VAE at one scale. Decoding its samples with
another VAE (retrained, or overwritten at the same path) gives garbage while everything "works",
so each diffusion checkpoint stores, under :data:`RECORD_KEY`, the VAE's weight fingerprint and
the latent scaling factor used in training; sampling reads the scale from there (not from the
training encode cache, which may be gone) and refuses a VAE with another fingerprint unless forced.
"""
from __future__ import annotations

import hashlib
import logging
from typing import Optional

import torch

__all__ = ["RECORD_KEY", "VAEMismatchError", "vae_fingerprint", "check_vae"]

RECORD_KEY = "medsora_latents"
"""Checkpoint entry: ``{"vae_fingerprint": str | None, "scaling_factor": float, "vae_ckpt": str | None}``."""

log = logging.getLogger("medsora.vae_record")


class VAEMismatchError(ValueError):
    """The VAE given is not the one a diffusion checkpoint was trained with."""


def vae_fingerprint(vae: torch.nn.Module) -> str:
    """SHA-256 (first 16 hex digits) of the VAE's weights: names, dtypes, shapes and bytes, in name order.

    The same weights give the same fingerprint whichever file they were loaded from (``last.ckpt``
    or the ``step=N.ckpt`` of the same step, a copy elsewhere).
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(vae.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()[:16]


def check_vae(record: dict, fingerprint: Optional[str], vae_path: str, ckpt_path: str, force: bool = False) -> None:
    """Refuse (or, with ``force``, warn about) a VAE whose fingerprint differs from the recorded one.

    Raises:
        VAEMismatchError: naming both fingerprints, the files and the way out.
    """
    wanted = record.get("vae_fingerprint")
    if wanted is None or fingerprint is None or wanted == fingerprint:
        return
    message = (f"{vae_path} (VAE fingerprint {fingerprint}) is not the VAE {ckpt_path} was trained with "
               f"(fingerprint {wanted}, then vae.ckpt={record.get('vae_ckpt')}): its decoder reads another latent "
               "space and the videos would be garbage")
    if not force:
        raise VAEMismatchError(message + "; give that VAE with --vae PATH, or --force-vae to decode anyway")
    log.warning("%s; decoding anyway (--force-vae), latents scaled by the recorded %s", message,
                record.get("scaling_factor"))
