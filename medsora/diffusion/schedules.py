"""diffusers schedulers configured from ``diffusion:`` — one place decides their arguments.

``clip_sample`` is always off: the schedulers' default clamps the predicted x0 to [-1, 1], which
is right for pixels but wrong for VAE latents, whose scaled values exceed that range.
"""
from __future__ import annotations

from diffusers import DDIMScheduler, DDPMScheduler

from medsora.diffusion.schema import DiffusionConfig

__all__ = ["train_scheduler", "sampling_scheduler"]


def train_scheduler(cfg: DiffusionConfig, learn_sigma: bool = False) -> DDPMScheduler:
    """The training noise process (``add_noise``/``get_velocity``) and the DDPM sampler.

    Args:
        cfg: the ``diffusion:`` section.
        learn_sigma: the model predicts a variance interpolation (``model.learn_sigma``); the DDPM
            sampler then uses diffusers' ``learned_range`` variance, as DiT does.
    """
    return DDPMScheduler(
        num_train_timesteps=cfg.num_train_timesteps,
        beta_start=cfg.beta_start,
        beta_end=cfg.beta_end,
        beta_schedule=cfg.beta_schedule,
        variance_type="learned_range" if learn_sigma else "fixed_small",
        clip_sample=False,
        prediction_type=cfg.prediction_type,
        timestep_spacing=cfg.timestep_spacing,
    )


def sampling_scheduler(cfg: DiffusionConfig, learn_sigma: bool = False, sampler: str | None = None):
    """A fresh sampler (``ddpm`` or ``ddim``, default ``cfg.sampler``) for one sampling run.

    A new object per run because ``set_timesteps`` mutates the scheduler.
    """
    sampler = sampler or cfg.sampler
    if sampler == "ddpm":
        return train_scheduler(cfg, learn_sigma)
    if sampler == "ddim":
        return DDIMScheduler(
            num_train_timesteps=cfg.num_train_timesteps,
            beta_start=cfg.beta_start,
            beta_end=cfg.beta_end,
            beta_schedule=cfg.beta_schedule,
            clip_sample=False,
            set_alpha_to_one=True,
            prediction_type=cfg.prediction_type,
            timestep_spacing=cfg.timestep_spacing,
        )
    raise ValueError(f"diffusion.sampler = {sampler!r}: expected 'ddpm' or 'ddim'")
