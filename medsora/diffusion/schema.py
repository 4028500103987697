"""Schema of ``diffusion:`` — noise schedule, objective and sampler."""
from __future__ import annotations

from dataclasses import dataclass

from medsora.schema_fields import choice


@dataclass
class DiffusionConfig:
    num_train_timesteps: int = 1000
    beta_schedule: str = choice("linear", "linear", "scaled_linear", "squaredcos_cap_v2")
    beta_start: float = 0.0001
    beta_end: float = 0.02
    prediction_type: str = choice("epsilon", "epsilon", "v_prediction")
    sampler: str = choice("ddim", "ddim", "ddpm")
    sample_steps: int = 250
    cfg_scale: float = 1.0
