"""Gaussian diffusion on VAE latents: diffusers schedulers, the training objective, samplers.

* :class:`DiffusionObjective` — noise a clean batch, the named per-sample loss terms
  (``denoise``, plus ``vlb`` for a learned variance);
* :func:`sample_latents` — DDPM/DDIM sampling with classifier-free guidance, deterministic
  for a list of seeded generators (:func:`sample_generators`);
* :func:`train_scheduler`, :func:`sampling_scheduler` — the configured diffusers schedulers.
"""
import importlib

_LAZY = {
    "DiffusionConfig": "medsora.diffusion.schema",
    "DiffusionObjective": "medsora.diffusion.objective",
    "guided_prediction": "medsora.diffusion.guidance",
    "sample_generators": "medsora.diffusion.sampler",
    "sample_latents": "medsora.diffusion.sampler",
    "sampling_scheduler": "medsora.diffusion.schedules",
    "train_scheduler": "medsora.diffusion.schedules",
}
"""Imported on first use: the config schema reads ``medsora.diffusion.schema`` without loading diffusers."""

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'medsora.diffusion' has no attribute {name!r}")
