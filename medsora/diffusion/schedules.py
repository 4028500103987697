"""diffusers schedulers configured from ``diffusion:`` — one place decides their arguments.

``clip_sample`` is always off: the schedulers' default clamps the predicted x0 to [-1, 1], which
is right for pixels but wrong for VAE latents, whose scaled values exceed that range.
"""
from __future__ import annotations

from typing import Optional, Sequence

from diffusers import (DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler,
                       FlowMatchHeunDiscreteScheduler)

from medsora.diffusion.schema import DiffusionConfig
from medsora.diffusion.time_shift import size_shift

__all__ = ["train_scheduler", "sampling_scheduler"]


def train_scheduler(cfg: DiffusionConfig, learn_sigma: bool = False) -> DDPMScheduler:
    """The Gaussian training noise process (``add_noise``/``get_velocity``) and the DDPM sampler.

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


def _gaussian_args(cfg: DiffusionConfig) -> dict:
    return dict(num_train_timesteps=cfg.num_train_timesteps, beta_start=cfg.beta_start, beta_end=cfg.beta_end,
                beta_schedule=cfg.beta_schedule, prediction_type=cfg.prediction_type,
                timestep_spacing=cfg.timestep_spacing)


def sampling_scheduler(cfg: DiffusionConfig, learn_sigma: bool = False, sampler: Optional[str] = None,
                       grid: Optional[Sequence[int]] = None):
    """A fresh diffusers scheduler for one sampling run (``set_timesteps`` mutates it).

    Args:
        sampler: ``ddpm`` | ``ddim`` | ``dpmpp`` (DPM-Solver++ 2M) for the Gaussian objective,
            ``euler`` | ``heun`` for flow matching (default ``cfg.sampler``; the pairing is
            checked by :func:`medsora.diffusion.samplers.check_sampling`).
        grid: (T, h, w) of the latents: the flow-matching time shift depends on it.
    """
    sampler = sampler or cfg.sampler
    if sampler == "ddpm":
        return train_scheduler(cfg, learn_sigma)
    if sampler == "ddim":
        return DDIMScheduler(**_gaussian_args(cfg), clip_sample=False, set_alpha_to_one=True)
    if sampler == "dpmpp":
        # 2M: second-order multistep in the data-prediction form; the last step first-order to
        # sigma 0 (diffusers' defaults lower_order_final, final_sigmas_type="zero").
        return DPMSolverMultistepScheduler(**_gaussian_args(cfg), algorithm_type="dpmsolver++", solver_order=2,
                                           thresholding=False)
    if sampler in ("euler", "heun"):
        shift = size_shift(cfg.shift, cfg.shift_base_tokens, grid) if grid is not None else float(cfg.shift)
        cls = FlowMatchEulerDiscreteScheduler if sampler == "euler" else FlowMatchHeunDiscreteScheduler
        return cls(num_train_timesteps=cfg.num_train_timesteps, shift=shift)
    raise ValueError(f"diffusion.sampler = {sampler!r}: expected ddpm, ddim, dpmpp, euler or heun")
