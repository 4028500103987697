"""Frequency-compensated 3D causal video VAE (diffusers' CogVideoX VAE + our branches).

Public API:

* :class:`FreqCompVAE` — ``encode(video: B×3×F×H×W) -> posterior`` (``.mean``, ``.std``,
  ``.sample()``, ``.mode()`` over ``B×C×T×h×w``, ``T = 1 + (F-1)/4``, ``h = H/8``) and
  ``decode(z) -> video``; ``FreqCompVAE.from_config(cfg.vae)``; ``set_chunking``.
* :func:`load_vae` — ``load_vae(ckpt_path) -> (vae in eval mode, scaling_factor)``.
* :class:`VAELoss`, :func:`focal_frequency_loss`, :func:`high_frequency_error`.
"""
import importlib

_LAZY = {
    "FreqCompVAE": "medsora.vae.model",
    "VAELoss": "medsora.vae.losses",
    "focal_frequency_loss": "medsora.vae.losses",
    "high_frequency_error": "medsora.vae.spectrum",
    "load_vae": "medsora.vae.checkpoint",
}
"""Imported on first use: the config schema reads ``medsora.vae.schema`` without loading diffusers."""

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'medsora.vae' has no attribute {name!r}")
