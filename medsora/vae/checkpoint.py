"""Load a trained VAE from a ``VAEModule`` checkpoint for the diffusion stage and the encode cache.

No Lightning here: inference reads the checkpoint file with :func:`medsora.pretrained.checkpoint_file.load_checkpoint`;
the VAE stage (:mod:`medsora.training.vae_module`) writes the entry named :data:`CHECKPOINT_KEY`.
"""
from __future__ import annotations

import dataclasses
import os

from diffusers import AutoencoderKLCogVideoX

from medsora.pretrained.checkpoint_file import load_checkpoint
from medsora.vae.model import FreqCompVAE
from medsora.vae.schema import VAEConfig

__all__ = ["CHECKPOINT_KEY", "load_vae", "vae_from_meta"]

CHECKPOINT_KEY = "medsora_vae"
"""The checkpoint entry holding ``{"vae": the vae: section, "base_config": ..., "scaling_factor": ...}``."""


def load_vae(ckpt_path: str | os.PathLike) -> tuple[FreqCompVAE, float]:
    """The VAE of a ``VAEModule`` checkpoint, ready to encode and decode.

    The model is rebuilt from the architecture stored in the checkpoint (no
    ``vae.pretrained`` folder is needed) and loaded strictly; with an EMA run the
    checkpoint's ``state_dict`` holds the averaged weights, which are the ones used.
    Chunking and tiling are those of the training config; change them with
    ``vae.set_chunking(...)``.

    Args:
        ckpt_path: a ``.ckpt`` written while training ``stage: vae``.
    Returns:
        ``(vae, scaling_factor)``: the :class:`FreqCompVAE` in eval mode with gradients
        off, and the latent scale (multiply latents by it before diffusion, divide
        before decoding).
    Raises:
        FileNotFoundError: no such file. ValueError: not a VAE-stage checkpoint, or no
        latent scale was measured or set.
    """
    ckpt = load_checkpoint(ckpt_path)
    meta = ckpt.get(CHECKPOINT_KEY)
    if meta is None:
        raise ValueError(
            f"{ckpt_path} is not a VAE checkpoint (no '{CHECKPOINT_KEY}' entry): train one with "
            "`python -m medsora.fit experiment=vae_demo` (or another stage: vae experiment) and set vae.ckpt to its "
            "checkpoints/last.ckpt"
        )
    if meta["scaling_factor"] is None:
        raise ValueError(
            f"{ckpt_path} has no latent scaling factor (saved before any training step): train longer, or set "
            "vae.scaling_factor=VALUE when training the VAE"
        )
    vae = vae_from_meta(meta)
    prefix = "vae."
    state = {k[len(prefix):]: t for k, t in ckpt["state_dict"].items() if k.startswith(prefix)}
    vae.load_state_dict(state, strict=True)
    return vae.eval().requires_grad_(False), float(meta["scaling_factor"])


def vae_from_meta(meta: dict) -> FreqCompVAE:
    """An untrained :class:`FreqCompVAE` of the architecture a checkpoint's ``medsora_vae`` entry records.

    ``meta`` holds ``base_config`` (the diffusers ``AutoencoderKLCogVideoX`` config) and ``vae`` (the
    ``vae:`` config section); used by :func:`load_vae` and by the exported ``vae/`` folder
    (:class:`medsora.export.components.MedSoraVAE`), so both build the same model.
    """
    known = {f.name for f in dataclasses.fields(VAEConfig)}  # keys an older version had and this one dropped are ignored
    settings = VAEConfig(**{k: v for k, v in meta["vae"].items() if k in known})
    return FreqCompVAE(AutoencoderKLCogVideoX.from_config(meta["base_config"]), settings)
