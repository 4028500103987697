"""Frequency-compensated 3D causal video VAE (diffusers' CogVideoX VAE + our branches).

Public API:

* :class:`FreqCompVAE` — ``encode(video: B×3×F×H×W) -> posterior`` (``.mean``, ``.std``,
  ``.sample()``, ``.mode()`` over ``B×C×T×h×w``, ``T = 1 + (F-1)/4``, ``h = H/8``) and
  ``decode(z) -> video``; ``FreqCompVAE.from_config(cfg.vae)``; ``set_chunking``.
* :func:`load_vae` — ``load_vae(ckpt_path) -> (vae in eval mode, scaling_factor)``.
* :class:`VAELoss`, :func:`focal_frequency_loss`, :func:`high_frequency_error`.
"""
from medsora.vae.losses import VAELoss, focal_frequency_loss
from medsora.vae.model import FreqCompVAE
from medsora.vae.spectrum import high_frequency_error

__all__ = ["FreqCompVAE", "VAELoss", "focal_frequency_loss", "high_frequency_error", "load_vae"]


def __getattr__(name: str):
    if name == "load_vae":
        from medsora.vae.checkpoint import load_vae

        return load_vae
    raise AttributeError(f"module 'medsora.vae' has no attribute {name!r}")
