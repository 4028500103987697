"""The denoising objective: diffusers' forward process plus the named loss terms.

``add_noise`` and ``get_velocity`` come from diffusers' :class:`DDPMScheduler`; this file only
decides what the model is asked to predict and how the terms are reduced.
"""
from __future__ import annotations

import torch
from torch import Tensor

from medsora.diffusion.schedules import train_scheduler
from medsora.diffusion.schema import DiffusionConfig
from medsora.diffusion.vlb import PosteriorTables

__all__ = ["DiffusionObjective"]


class DiffusionObjective:
    """Training noise and per-sample loss terms for epsilon or v prediction, optional learned sigma.

    The Gaussian objective (``diffusion.objective = ddpm``); :class:`~medsora.diffusion.flow_matching.
    FlowMatchingObjective` has the same interface (``draw_timesteps``, ``add_noise``,
    ``model_timesteps``, ``align_steps``, ``losses``).

    Args:
        cfg: the ``diffusion:`` section.
        learn_sigma: the model outputs 2C channels, the second half a variance interpolation
            trained by the variational-bound term (weight ``cfg.vlb_weight``).
    """

    name = "ddpm"

    def __init__(self, cfg: DiffusionConfig, learn_sigma: bool = False):
        self.scheduler = train_scheduler(cfg, learn_sigma)
        self.num_timesteps = int(cfg.num_train_timesteps)
        self.prediction_type = cfg.prediction_type
        self.learn_sigma = learn_sigma
        self.vlb_weight = float(cfg.vlb_weight)
        self.tables = PosteriorTables(self.scheduler.betas) if learn_sigma else None

    def sample_timesteps(self, n: int, device: torch.device | str = "cpu",
                         generator: torch.Generator | None = None) -> Tensor:
        """Uniform integer timesteps in [0, num_train_timesteps), shape n."""
        return torch.randint(0, self.num_timesteps, (n,), device=device, generator=generator)

    def draw_timesteps(self, rng, shape, grid=None) -> Tensor:
        """Uniform integer steps of ``shape`` from a :class:`~medsora.training.batch_random.BatchRandom`."""
        return rng.randint(self.num_timesteps, tuple(shape))

    def add_noise(self, x0: Tensor, eps: Tensor, t: Tensor) -> Tensor:
        """``√ᾱ_t·x0 + √(1−ᾱ_t)·ε`` (diffusers' ``add_noise``)."""
        return self.scheduler.add_noise(x0, eps, t)

    @staticmethod
    def model_timesteps(t: Tensor) -> Tensor:
        """What the backbone sees: the integer step itself."""
        return t

    @staticmethod
    def align_steps(t: Tensor) -> Tensor:
        """The step τ of OFRA's ``1/(τ+1)`` weight: the DDPM step itself."""
        return t

    def noise(self, x0: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Draw t and ε and noise a clean batch.

        Args:
            x0: clean latents B×C×T×H×W.
        Returns:
            (x_t, t, ε): x_t and ε like x0, t of shape B (long).
        """
        t = self.sample_timesteps(x0.shape[0], x0.device, generator)
        eps = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
        return self.scheduler.add_noise(x0, eps, t), t, eps

    def target(self, x0: Tensor, eps: Tensor, t: Tensor) -> Tensor:
        """What the model regresses: ε, or v = √ᾱ·ε − √(1−ᾱ)·x0."""
        if self.prediction_type == "epsilon":
            return eps
        return self.scheduler.get_velocity(x0, eps, t)

    def split(self, model_out: Tensor, channels: int) -> tuple[Tensor, Tensor | None]:
        """Split a B×C'×… output into (prediction B×C×…, variance values B×C×… or None)."""
        expected = 2 * channels if self.learn_sigma else channels
        if model_out.shape[1] != expected:
            raise ValueError(
                f"model output has {model_out.shape[1]} channels, expected {expected} "
                f"({channels} latent channels{', ×2 for model.learn_sigma' if self.learn_sigma else ''}); "
                "check that model.learn_sigma matches the checkpoint and the backbone"
            )
        if not self.learn_sigma:
            return model_out, None
        return model_out[:, :channels], model_out[:, channels:]

    def losses(self, model_out: Tensor, x0: Tensor, xt: Tensor, t: Tensor, eps: Tensor,
               weight: Tensor | None = None) -> dict[str, Tensor]:
        """Per-sample loss terms (each of shape B, float32).

        ``weight`` (broadcastable to x0, e.g. B×1×T×H×W; 1 = counted, 0 = skipped) restricts every
        term to some positions: context latents (image-to-video, long video) are given, not predicted.

        Returns:
            ``{"denoise": mean squared error of the prediction}`` plus ``"vlb"`` (bits/dim, times
            ``vlb_weight``) when sigma is learned; the VLB sees a detached mean so it trains only
            the variance, as in improved DDPM's hybrid loss.
        """
        prediction, var_values = self.split(model_out.float(), x0.shape[1])
        dims = tuple(range(1, x0.ndim))
        target = self.target(x0.float(), eps.float(), t)
        if weight is None:
            mean = lambda v: v.mean(dim=dims)  # noqa: E731
        else:
            w = weight.float().expand_as(x0)
            mean = lambda v: (v * w).sum(dim=dims) / w.sum(dim=dims).clamp(min=1.0)  # noqa: E731
        terms = {"denoise": mean((prediction - target).pow(2))}
        if var_values is not None:
            vlb = self.tables.vlb(prediction.detach(), var_values, x0.float(), xt.float(), t, self.prediction_type,
                                  reduce=mean)
            # The bound's terms are per-step; DiT trains at 1000 steps where this scale is 1.
            terms["vlb"] = self.vlb_weight * vlb * (self.num_timesteps / 1000.0)
        return terms
