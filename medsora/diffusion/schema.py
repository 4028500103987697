"""Schema of ``diffusion:`` — the objective (Gaussian DDPM or flow matching), its schedule, the sampler."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from medsora.config.fields import bounded, choice


@dataclass
class DiffusionConfig:
    """Objective and sampler settings.

    ``objective: ddpm`` is Gaussian diffusion (DiT/MedSora: 1000 linear-beta steps, ε or v
    prediction, 250 sampling steps); whether the model also predicts its variance (learned sigma,
    DiT) is ``model.learn_sigma``, which switches the variational-bound term on and the DDPM
    sampler to ``learned_range``. ``objective: flow_matching`` is rectified flow (SD3, Open-Sora):
    ``x_t = (1−t)·x0 + t·ε``, velocity target ``ε − x0``, ``t`` drawn by ``timestep_sampling`` and
    shifted by ``shift`` scaled with the clip's size (see :mod:`medsora.diffusion.flow_matching`).
    The beta settings also serve flow matching: they define the Gaussian step with the same
    signal-to-noise ratio, which gives OFRA's ``1/(t+1)`` weight a meaning for continuous ``t``.
    """

    objective: str = choice("ddpm", "ddpm", "flow_matching")
    num_train_timesteps: int = bounded(1000, 1, 100000)
    beta_schedule: str = choice("linear", "linear", "scaled_linear", "squaredcos_cap_v2")
    beta_start: float = bounded(0.0001, 0.0, 1.0)
    beta_end: float = bounded(0.02, 0.0, 1.0)
    prediction_type: str = choice("epsilon", "epsilon", "v_prediction")  # ddpm only
    vlb_weight: float = bounded(1.0, 0.0)  # weight of the variational-bound term when model.learn_sigma (DiT: 1)
    # flow matching only: training timesteps and the time shift (train and sampling)
    timestep_sampling: str = choice("logit_normal", "logit_normal", "uniform")
    logit_mean: float = 0.0  # SD3: logit-normal(0, 1)
    logit_std: float = 1.0
    shift: float = 1.0  # time shift s at shift_base_tokens latent positions: t -> s·t / (1 + (s−1)·t)
    shift_base_tokens: int = 0  # T·h·w latent positions where the shift is `shift`; 0 = no size scaling
    sampler: str = choice("ddim", "ddim", "ddpm", "dpmpp", "euler", "heun")
    sample_steps: int = bounded(250, 1, 100000)
    timestep_spacing: str = choice("trailing", "trailing", "leading", "linspace")  # diffusers set_timesteps
    ddim_eta: float = bounded(0.0, 0.0, 1.0)
    cfg_scale: float = bounded(1.0, 0.0, 1000.0)  # classifier-free guidance scale; 1 = the conditional prediction

    @staticmethod
    def checks(c) -> Iterator[tuple[str, str]]:
        """Rules between fields (bounds and choices are in the field definitions)."""
        if not c.beta_start < c.beta_end:
            yield "beta_end", f"must be larger than diffusion.beta_start = {c.beta_start}"
