"""Which sampler fits which objective, and the checks on sampling arguments (one line each).

Every check names the command-line argument of ``python -m medsora.sample`` and the config key,
so the same message serves the CLI, the sample-video callback and the sweeps.
"""
from __future__ import annotations

import math

from medsora.diffusion.schema import DiffusionConfig

__all__ = ["SAMPLERS", "DETERMINISTIC", "samplers_for", "check_sampler", "check_sampling", "build_objective",
           "evaluations"]

SAMPLERS = {"ddpm": "ddpm", "ddim": "ddpm", "dpmpp": "ddpm", "euler": "flow_matching", "heun": "flow_matching"}
"""Sampler name -> the objective whose model it samples."""

DETERMINISTIC = ("ddim", "dpmpp", "euler", "heun")
"""Samplers that map noise to a sample without further randomness (DDIM at eta 0)."""


def samplers_for(objective: str) -> tuple[str, ...]:
    """The samplers that fit ``objective`` (``ddpm`` | ``flow_matching``)."""
    return tuple(name for name, obj in SAMPLERS.items() if obj == objective)


def check_sampler(objective: str, sampler: str) -> None:
    """Raise ``ValueError`` (naming the samplers that fit) unless ``sampler`` samples ``objective``."""
    if sampler not in SAMPLERS:
        raise ValueError(f"--sampler / diffusion.sampler = {sampler!r}: expected one of {', '.join(SAMPLERS)}")
    if SAMPLERS[sampler] != objective:
        fit = samplers_for(objective)
        raise ValueError(f"--sampler / diffusion.sampler = {sampler!r} does not fit this model's objective "
                         f"{objective!r} (diffusion.objective): use {' or '.join(fit)}")


def check_sampling(cfg: DiffusionConfig, sampler: str, steps: int, guidance_scale: float) -> None:
    """Validate a sampling request; ``ValueError`` with one line naming the argument.

    Gaussian samplers take 1..``num_train_timesteps`` steps (they pick steps of the training
    grid); flow-matching samplers take any positive count (their sigmas are continuous).
    """
    check_sampler(cfg.objective, sampler)
    if isinstance(steps, bool) or int(steps) != steps:
        raise ValueError(f"--steps / diffusion.sample_steps = {steps!r}: expected a whole number")
    if SAMPLERS[sampler] == "ddpm" and not 1 <= steps <= cfg.num_train_timesteps:
        raise ValueError(f"--steps / diffusion.sample_steps = {steps}: the {sampler} sampler takes 1.."
                         f"{cfg.num_train_timesteps} steps (diffusion.num_train_timesteps)")
    if steps < 1:
        raise ValueError(f"--steps / diffusion.sample_steps = {steps}: expected at least 1")
    if not math.isfinite(guidance_scale) or guidance_scale < 0:
        raise ValueError(f"--cfg / diffusion.cfg_scale = {guidance_scale}: the guidance scale must be a number >= 0 "
                         "(1 = no guidance)")


def build_objective(cfg: DiffusionConfig, learn_sigma: bool = False):
    """The training objective named by ``cfg.objective`` (checks that ``cfg.sampler`` fits it)."""
    check_sampler(cfg.objective, cfg.sampler)
    if cfg.objective == "flow_matching":
        from medsora.diffusion.flow_matching import FlowMatchingObjective

        return FlowMatchingObjective(cfg, learn_sigma)
    from medsora.diffusion.objective import DiffusionObjective

    return DiffusionObjective(cfg, learn_sigma)


def evaluations(sampler: str, steps: int) -> int:
    """Denoiser evaluations of a run (Heun: two per step but the last, which is Euler to sigma 0)."""
    return 2 * steps - 1 if sampler == "heun" else steps
