"""Gaussian diffusion on VAE latents: diffusers schedulers, the training objective, samplers.

* :class:`DiffusionObjective` — noise a clean batch, the named per-sample loss terms
  (``denoise``, plus ``vlb`` for a learned variance);
* :func:`sample_latents` — DDPM/DDIM sampling with classifier-free guidance, deterministic
  for a list of seeded generators (:func:`sample_generators`);
* :func:`train_scheduler`, :func:`sampling_scheduler` — the configured diffusers schedulers.
"""
from medsora.diffusion.guidance import guided_prediction
from medsora.diffusion.objective import DiffusionObjective
from medsora.diffusion.sampler import sample_generators, sample_latents
from medsora.diffusion.schedules import sampling_scheduler, train_scheduler
from medsora.diffusion.schema import DiffusionConfig

__all__ = [
    "DiffusionConfig", "DiffusionObjective", "guided_prediction", "sample_generators", "sample_latents",
    "sampling_scheduler", "train_scheduler",
]
