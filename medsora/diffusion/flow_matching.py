"""Rectified flow / flow matching (SD3, Open-Sora 1.2+): ``x_t = (1−t)·x0 + t·ε``, target ``ε − x0``.

The forward process and the velocity target are two lines of algebra; diffusers ships the
*sampling* side (``FlowMatchEulerDiscreteScheduler``/``FlowMatchHeunDiscreteScheduler``, see
:mod:`medsora.diffusion.schedules`) but no training-side helper for drawing shifted logit-normal
timesteps, so that part is written here after SD3 (Esser et al. 2024, Sec. 3.1: logit-normal
sampling) and Open-Sora 1.2 (its resolution- and length-dependent time shift).

Time convention (diffusers'): ``t = 0`` is data, ``t = 1`` noise; the backbone sees ``t·N``
(``N = num_train_timesteps``), as the schedulers' ``timesteps = sigmas·N`` during sampling.

**The time shift.** ``t -> s·t / (1 + (s−1)·t)`` moves timesteps towards noise for ``s > 1`` —
the same formula as the schedulers' ``shift``, so training and sampling use one schedule. With
``shift_base_tokens = B > 0`` the shift grows with the clip: ``s = shift·√(n / B)``, ``n = T·h·w``
the latent positions of the clip (Open-Sora: √ of the spatial ratio times √ of the temporal
ratio, i.e. √ of the ratio of positions); single-frame (joint-image) latents get a smaller shift.

**OFRA's 1/(t+1) weight for continuous t.** MedSora weights the alignment term by ``1/(τ+1)`` for
the integer DDPM step τ. For flow matching, τ is the (fractional) step of the run's DDPM schedule
(``beta_*`` settings) whose signal-to-noise ratio ``ᾱ/(1−ᾱ)`` equals the flow's ``((1−t)/t)²``,
interpolated linearly in log-SNR between integer steps: the same noise level gets the same
weight under either objective. ``t = 0`` maps to τ = 0 (weight 1), ``t = 1`` to τ = N−1.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from medsora.diffusion.schedules import train_scheduler
from medsora.diffusion.schema import DiffusionConfig
from medsora.diffusion.time_shift import size_shift, time_shift

__all__ = ["FlowMatchingObjective", "time_shift"]


class FlowMatchingObjective:
    """Training noise, timesteps and the velocity loss of rectified flow.

    Args:
        cfg: the ``diffusion:`` section (``objective: flow_matching``).
        learn_sigma: must be False (flow matching has no variance to learn).
    """

    name = "flow_matching"
    learn_sigma = False

    def __init__(self, cfg: DiffusionConfig, learn_sigma: bool = False):
        if learn_sigma:
            raise ValueError("model.learn_sigma = true needs a Gaussian objective: set model.learn_sigma=false "
                             "with diffusion.objective=flow_matching (there is no variance to learn)")
        if cfg.shift <= 0 or not math.isfinite(cfg.shift):
            raise ValueError(f"diffusion.shift = {cfg.shift}: must be a positive number (1 = no shift)")
        if cfg.logit_std <= 0:
            raise ValueError(f"diffusion.logit_std = {cfg.logit_std}: must be > 0")
        if cfg.shift_base_tokens < 0:
            raise ValueError(f"diffusion.shift_base_tokens = {cfg.shift_base_tokens}: must be >= 0 (0 = fixed shift)")
        self.num_timesteps = int(cfg.num_train_timesteps)
        self.sampling, self.logit_mean, self.logit_std = cfg.timestep_sampling, float(cfg.logit_mean), float(cfg.logit_std)
        self.base_shift, self.base_tokens = float(cfg.shift), int(cfg.shift_base_tokens)
        abar = train_scheduler(cfg).alphas_cumprod.double()
        self._ddpm_log_snr = (abar.log() - (1.0 - abar).log()).float()  # decreasing in the step

    def shift_for(self, grid: Sequence[int]) -> float:
        """The time shift for latents of grid (T, h, w)."""
        return size_shift(self.base_shift, self.base_tokens, grid)

    def draw_timesteps(self, rng, shape: Sequence[int], grid: Sequence[int]) -> Tensor:
        """Continuous t in [0, 1] of ``shape`` from a :class:`~medsora.training.batch_random.BatchRandom`.

        ``uniform``: u ~ U[0, 1); ``logit_normal``: u = sigmoid(m + s·n), n ~ N(0, 1); then shifted.
        """
        if self.sampling == "uniform":
            u = rng.rand(shape)
        else:
            u = torch.sigmoid(self.logit_mean + self.logit_std * rng.randn(shape))
        return time_shift(u, self.shift_for(grid))

    def noise(self, x0: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Draw t (uniform in [0, 1], shifted) and ε and noise a clean batch: (x_t, t, ε)."""
        u = torch.rand(x0.shape[0], generator=generator).to(x0.device)
        t = time_shift(u, self.shift_for(x0.shape[2:]))
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
        return self.add_noise(x0, eps, t), t, eps

    @staticmethod
    def _b(t: Tensor, like: Tensor) -> Tensor:
        return t.to(like.dtype).view(-1, *([1] * (like.ndim - 1)))

    def add_noise(self, x0: Tensor, eps: Tensor, t: Tensor) -> Tensor:
        """``(1−t)·x0 + t·ε`` (x0, ε: B×…, t: B)."""
        tb = self._b(t, x0)
        return (1.0 - tb) * x0 + tb * eps

    def target(self, x0: Tensor, eps: Tensor, t: Tensor) -> Tensor:
        """The velocity ``dx_t/dt = ε − x0``."""
        return eps - x0

    def model_timesteps(self, t: Tensor) -> Tensor:
        """What the backbone's timestep embedder sees: ``t·N`` (float), as in diffusers' sampling."""
        return t.float() * self.num_timesteps

    def align_steps(self, t: Tensor) -> Tensor:
        """The fractional DDPM step τ with the same signal-to-noise ratio (OFRA weight ``1/(τ+1)``)."""
        t = t.double().clamp(0.0, 1.0)
        log_snr = 2.0 * (torch.log1p(-t) - torch.log(t))  # +inf at t = 0, -inf at t = 1
        table = -self._ddpm_log_snr.to(t.device, torch.float64)  # increasing
        hi = torch.searchsorted(table, -log_snr).clamp(1, len(table) - 1)
        lo = hi - 1
        frac = ((-log_snr - table[lo]) / (table[hi] - table[lo])).clamp(0.0, 1.0)
        frac = torch.nan_to_num(frac, nan=0.0)
        return (lo + frac).float()

    def split(self, model_out: Tensor, channels: int) -> tuple[Tensor, None]:
        """(velocity B×C×…, None); fails naming the setting on a wrong channel count."""
        if model_out.shape[1] != channels:
            raise ValueError(f"model output has {model_out.shape[1]} channels, expected {channels} for flow matching: "
                             "set model.learn_sigma=false")
        return model_out, None

    def losses(self, model_out: Tensor, x0: Tensor, xt: Tensor, t: Tensor, eps: Tensor,
               weight: Tensor | None = None) -> dict[str, Tensor]:
        """``{"denoise": ‖v̂ − (ε − x0)‖² averaged per sample}`` (shape B, float32).

        ``weight`` (broadcastable to x0; 1 = counted, 0 = skipped) leaves out given context latents,
        as in the Gaussian objective.
        """
        prediction, _ = self.split(model_out.float(), x0.shape[1])
        dims = tuple(range(1, x0.ndim))
        err = (prediction - self.target(x0.float(), eps.float(), t)).pow(2)
        if weight is None:
            return {"denoise": err.mean(dim=dims)}
        w = weight.float().expand_as(x0)
        return {"denoise": (err * w).sum(dim=dims) / w.sum(dim=dims).clamp(min=1.0)}
