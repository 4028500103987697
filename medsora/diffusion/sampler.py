"""Ancestral (DDPM) and DDIM sampling of latents with diffusers' ``set_timesteps``/``step``."""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
from diffusers.utils.torch_utils import randn_tensor
from torch import Tensor
from tqdm.auto import tqdm

from medsora.cond.context import apply_context
from medsora.diffusion.guidance import Denoiser, guided_prediction
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
                   progress: bool = False) -> Tensor:
    """Generate latents from Gaussian noise.

    Args:
        denoiser: ``denoiser(x, t, **cond) -> B×C'×T×H×W`` (eval mode, EMA weights).
        shape: (B, C, T, H, W) of the latents.
        cfg: the ``diffusion:`` section (schedule, default sampler, steps, guidance, DDIM eta).
        generators: B CPU generators (see :func:`sample_generators`); the result is a function of
            them alone.
        learn_sigma: the denoiser outputs 2C channels; DDPM then samples with the learned variance.
        sampler, steps, guidance_scale: override ``cfg.sampler``, ``cfg.sample_steps``, ``cfg.cfg_scale``.
        cond / uncond: conditioning keyword arguments and their null counterparts (for guidance);
            ``both`` the arguments of the stacked [cond; uncond] batch (see ``guided_prediction``).
            Context latents in ``cond`` (``context_latents``, ``context_latent_mask``: image-to-video,
            long video) are written into the sample before the first step and after every step, so
            they stay exactly clean whatever the sampler and the guidance.
    Returns:
        latents B×C×T×H×W in ``dtype`` on ``device`` (in the model's scaled latent space).
    """
    if len(generators) != shape[0]:
        raise ValueError(f"got {len(generators)} generators for a batch of {shape[0]}")
    sampler = sampler or cfg.sampler
    steps = int(steps or cfg.sample_steps)
    if not 1 <= steps <= cfg.num_train_timesteps:
        raise ValueError(f"sampling steps = {steps}: expected 1..{cfg.num_train_timesteps} (diffusion.sample_steps)")
    scale = float(cfg.cfg_scale if guidance_scale is None else guidance_scale)
    scheduler = sampling_scheduler(cfg, learn_sigma, sampler)
    scheduler.set_timesteps(steps, device=device)
    channels = shape[1]
    x = randn_tensor(tuple(shape), generator=generators, device=torch.device(device), dtype=torch.float32)
    x = x * scheduler.init_noise_sigma
    known = (cond or {}).get("context_latents"), (cond or {}).get("context_latent_mask")
    x = apply_context(x, *known)
    for t in tqdm(scheduler.timesteps, desc=f"sampling ({sampler}, {steps} steps)", disable=not progress,
                  leave=False):
        model_in = scheduler.scale_model_input(x, t)
        t_batch = t.expand(shape[0]).to(device)
        out = guided_prediction(denoiser, model_in.to(dtype), t_batch, channels, cond, uncond, scale,
                                 both).float()
        if sampler == "ddim":
            # DDIM is deterministic for eta = 0 and has no use for the variance channels.
            x = scheduler.step(out[:, :channels], t, x, eta=cfg.ddim_eta, generator=generators).prev_sample
        else:
            x = scheduler.step(out, t, x, generator=generators).prev_sample
        x = apply_context(x, *known)
    return x.to(dtype)
