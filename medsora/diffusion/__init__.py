"""Diffusion on VAE latents: the objectives, diffusers schedulers, one sampling loop.

* :class:`DiffusionObjective` (Gaussian DDPM, ε/v, learned σ) and :class:`FlowMatchingObjective`
  (rectified flow) — timesteps, noising and the named per-sample loss terms; ``build_objective``
  picks one from ``diffusion.objective``;
* :func:`sample_latents` — any sampler (``ddpm``, ``ddim``, ``dpmpp`` for Gaussian models;
  ``euler``, ``heun`` for flow matching) with classifier-free guidance, deterministic for a list of
  seeded generators (:func:`sample_generators`), through :func:`denoise_loop`;
* :func:`train_scheduler`, :func:`sampling_scheduler` — the configured diffusers schedulers.
"""
import importlib

_LAZY = {
    "DETERMINISTIC": "medsora.diffusion.samplers",
    "DiffusionConfig": "medsora.diffusion.schema",
    "DiffusionObjective": "medsora.diffusion.objective",
    "FlowMatchingObjective": "medsora.diffusion.flow_matching",
    "SAMPLERS": "medsora.diffusion.samplers",
    "build_objective": "medsora.diffusion.samplers",
    "check_sampling": "medsora.diffusion.samplers",
    "denoise_loop": "medsora.diffusion.loop",
    "guided_prediction": "medsora.diffusion.guidance",
    "sample_generators": "medsora.diffusion.sampler",
    "sample_latents": "medsora.diffusion.sampler",
    "samplers_for": "medsora.diffusion.samplers",
    "sampling_scheduler": "medsora.diffusion.schedules",
    "train_scheduler": "medsora.diffusion.schedules",
}
"""Imported on first use: the config schema reads ``medsora.diffusion.schema`` without loading diffusers."""

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'medsora.diffusion' has no attribute {name!r}")
