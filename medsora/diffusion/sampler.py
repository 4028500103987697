"""Sampling latents with any sampler (diffusers schedulers) through :func:`~medsora.diffusion.loop.denoise_loop`."""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import torch
from diffusers.utils.torch_utils import randn_tensor
from torch import Tensor

from medsora.cond.context import apply_context
from medsora.diffusion.guidance import Denoiser, guided_prediction
from medsora.diffusion.loop import StepHook, denoise_loop
from medsora.diffusion.samplers import check_sampling
from medsora.diffusion.schedules import sampling_scheduler
from medsora.diffusion.schema import DiffusionConfig

__all__ = ["sample_generators", "sample_latents"]


def sample_generators(seed: int, n: int, start: int = 0) -> list[torch.Generator]:
    """One CPU generator per sample, seeded ``seed + start + i``.

    Sample i is then the same whatever the batch size or device it is drawn in (noise is drawn
    on the CPU and moved), so ``--seed S`` names a fixed set of videos.
    """
    return [torch.Generator("cpu").manual_seed(int(seed) + start + i) for i in range(n)]


@torch.no_grad()
def sample_latents(denoiser: Denoiser, shape: Sequence[int], cfg: DiffusionConfig, *,
                   generators: list[torch.Generator], learn_sigma: bool = False,
                   sampler: str | None = None, steps: int | None = None,
                   guidance_scale: float | None = None,
                   cond: Mapping[str, Tensor | None] | None = None,
                   uncond: Mapping[str, Tensor | None] | None = None,
                   both: Mapping[str, Tensor | None] | None = None,
                   device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                   progress: bool = False, hook: Optional[StepHook] = None) -> Tensor:
    """Generate latents from Gaussian noise.

    Args:
        denoiser: ``denoiser(x, t, **cond) -> B×C'×T×H×W`` (eval mode, EMA weights); ``t`` is what
            the objective trained it with (integer DDPM steps, or ``t·N`` for flow matching).
        shape: (B, C, T, H, W) of the latents.
        cfg: the ``diffusion:`` section (objective, schedule, default sampler, steps, guidance, DDIM eta).
        generators: B CPU generators (see :func:`sample_generators`); the result is a function of
            them alone.
        learn_sigma: the denoiser outputs 2C channels; DDPM then samples with the learned variance
            (the other samplers use the first C).
        sampler, steps, guidance_scale: override ``cfg.sampler``, ``cfg.sample_steps``, ``cfg.cfg_scale``;
            a sampler that does not fit ``cfg.objective``, steps < 1 (or more than the Gaussian
            schedule has) and a negative scale raise ``ValueError`` naming the argument.
        cond / uncond: conditioning keyword arguments and their null counterparts (for guidance);
            ``both`` the arguments of the stacked [cond; uncond] batch (see ``guided_prediction``).
            Context latents in ``cond`` (``context_latents``, ``context_latent_mask``: image-to-video,
            long video) are written into the sample before the first step and after every step, so
            they stay exactly clean whatever the sampler and the guidance.
        hook: re-imposes context latents at every step (:data:`~medsora.diffusion.loop.StepHook`).
    Returns:
        latents B×C×T×H×W in ``dtype`` on ``device`` (in the model's scaled latent space).
    """
    if len(generators) != shape[0]:
        raise ValueError(f"got {len(generators)} generators for a batch of {shape[0]}")
    sampler = sampler or cfg.sampler
    steps = cfg.sample_steps if steps is None else steps
    scale = float(cfg.cfg_scale if guidance_scale is None else guidance_scale)
    check_sampling(cfg, sampler, steps, scale)
    scheduler = sampling_scheduler(cfg, learn_sigma, sampler, grid=shape[2:])
    scheduler.set_timesteps(int(steps), device=device)
    channels = shape[1]
    x = randn_tensor(tuple(shape), generator=generators, device=torch.device(device), dtype=torch.float32)
    x = x * getattr(scheduler, "init_noise_sigma", 1.0)
    keep_variance = sampler == "ddpm"  # only DDPM's learned_range uses the variance channels

    def predict(model_in: Tensor, t: Tensor) -> Tensor:
        t_batch = t.expand(shape[0]).to(device)
        out = guided_prediction(denoiser, model_in.to(dtype), t_batch, channels, cond, uncond, scale, both).float()
        return out if keep_variance else out[:, :channels]

    step_kwargs = {"eta": cfg.ddim_eta, "generator": generators} if sampler == "ddim" else {}
    if sampler == "ddpm":
        step_kwargs = {"generator": generators}
    known = (cond or {}).get("context_latents"), (cond or {}).get("context_latent_mask")
    if known[0] is not None:  # context latents (image-to-video, long video) stay exactly clean at every step
        user_hook = hook

        def hook(sample: Tensor, t: Optional[Tensor]) -> Tensor:
            sample = apply_context(sample, *known)
            return user_hook(sample, t) if user_hook is not None else sample
    x = denoise_loop(predict, scheduler, x, hook=hook, step_kwargs=step_kwargs, progress=progress,
                     desc=f"sampling ({sampler}, {steps} steps)")
    return x.to(dtype)
