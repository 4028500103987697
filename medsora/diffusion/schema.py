"""Schema of ``diffusion:`` — noise schedule, objective and sampler."""
from __future__ import annotations

from dataclasses import dataclass

from medsora.config.fields import choice


@dataclass
class DiffusionConfig:
    """Gaussian diffusion settings (DiT/MedSora: 1000 linear-beta steps, 250 sampling steps).

    Whether the model also predicts its variance (learned sigma, DiT) is ``model.learn_sigma``;
    it switches the variational-bound term on and the DDPM sampler to ``learned_range``.
    """

    num_train_timesteps: int = 1000
    beta_schedule: str = choice("linear", "linear", "scaled_linear", "squaredcos_cap_v2")
    beta_start: float = 0.0001
    beta_end: float = 0.02
    prediction_type: str = choice("epsilon", "epsilon", "v_prediction")
    vlb_weight: float = 1.0  # weight of the variational-bound term when model.learn_sigma (DiT: 1)
    sampler: str = choice("ddim", "ddim", "ddpm")
    sample_steps: int = 250
    timestep_spacing: str = choice("trailing", "trailing", "leading", "linspace")  # diffusers set_timesteps
    ddim_eta: float = 0.0
    cfg_scale: float = 1.0  # classifier-free guidance scale; 1 = the conditional prediction
