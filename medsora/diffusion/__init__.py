"""Diffusion on VAE latents: the objectives, diffusers schedulers, one sampling loop.

* :class:`DiffusionObjective` (Gaussian DDPM, ε/v, learned σ) and :class:`FlowMatchingObjective`
  (rectified flow) — timesteps, noising and the named per-sample loss terms; ``build_objective``
  picks one from ``diffusion.objective``;
* :func:`sample_latents` — any sampler (``ddpm``, ``ddim``, ``dpmpp`` for Gaussian models;
  ``euler``, ``heun`` for flow matching) with classifier-free guidance, deterministic for a list of
  seeded generators (:func:`sample_generators`), through :func:`denoise_loop`;
* :func:`train_scheduler`, :func:`sampling_scheduler` — the configured diffusers schedulers.
"""
from medsora.diffusion.flow_matching import FlowMatchingObjective
from medsora.diffusion.guidance import guided_prediction
from medsora.diffusion.loop import denoise_loop
from medsora.diffusion.objective import DiffusionObjective
from medsora.diffusion.sampler import sample_generators, sample_latents
from medsora.diffusion.samplers import DETERMINISTIC, SAMPLERS, build_objective, check_sampling, samplers_for
from medsora.diffusion.schedules import sampling_scheduler, train_scheduler
from medsora.diffusion.schema import DiffusionConfig

__all__ = [
    "DETERMINISTIC", "DiffusionConfig", "DiffusionObjective", "FlowMatchingObjective", "SAMPLERS", "build_objective",
    "check_sampling", "denoise_loop", "guided_prediction", "sample_generators", "sample_latents", "samplers_for",
    "sampling_scheduler", "train_scheduler",
]
