"""Load a trained VAE from a ``VAEModule`` checkpoint for the diffusion stage and the encode cache."""
from __future__ import annotations

import os

from diffusers import AutoencoderKLCogVideoX

from medsora.training.checkpointing import load_checkpoint
from medsora.training.vae_module import CHECKPOINT_KEY
from medsora.vae.model import FreqCompVAE

__all__ = ["load_vae", "vae_from_meta"]


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
    from omegaconf import OmegaConf

    from medsora.vae.schema import VAEConfig

    # the whole recorded section: settings resolved from others (norm: auto reads vae.pretrained) resolve alike
    settings = OmegaConf.merge(OmegaConf.structured(VAEConfig), meta["vae"])
    return FreqCompVAE(AutoencoderKLCogVideoX.from_config(meta["base_config"]), settings)
