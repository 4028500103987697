"""Training: the LightningModules and everything that runs them.

* :mod:`~medsora.training.diffusion_module` — ``DiffusionModule`` (denoising + alignment, EMA, sampling hooks),
  with sampling in :mod:`~medsora.training.sampling_mixin`.
* :mod:`~medsora.training.vae_module` — ``VAEModule``, the VAE stage.
* :mod:`~medsora.training.callbacks` — sample logging, the non-finite step guard, throughput.
* :mod:`~medsora.training.checkpointing` — atomic checkpoint writes, safe loading, ``ckpt=last`` resolution.
* :mod:`~medsora.training.cache_check` — refuses an encode cache made for another run; :mod:`~medsora.training.batch_random`
  per-step seeds.
* :mod:`~medsora.training.trainer_factory` — the Lightning ``Trainer`` from ``cfg.trainer``.
* :mod:`~medsora.training.model_factory` — the backbone from the typed config.

Nothing here is imported by the plain ``nn.Module`` packages (backbone, vae, ssm, cond, flow, diffusion).
"""
