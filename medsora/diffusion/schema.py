"""Schema of ``diffusion:`` — noise schedule, objective and sampler."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from medsora.config.fields import bounded, choice


@dataclass
class DiffusionConfig:
    """Gaussian diffusion settings (DiT/MedSora: 1000 linear-beta steps, 250 sampling steps).

    Whether the model also predicts its variance (learned sigma, DiT) is ``model.learn_sigma``;
    it switches the variational-bound term on and the DDPM sampler to ``learned_range``.
    """

    num_train_timesteps: int = bounded(1000, 1, 100000)
    beta_schedule: str = choice("linear", "linear", "scaled_linear", "squaredcos_cap_v2")
    beta_start: float = bounded(0.0001, 0.0, 1.0)
    beta_end: float = bounded(0.02, 0.0, 1.0)
    prediction_type: str = choice("epsilon", "epsilon", "v_prediction")
    vlb_weight: float = bounded(1.0, 0.0)  # weight of the variational-bound term when model.learn_sigma (DiT: 1)
    sampler: str = choice("ddim", "ddim", "ddpm")
    sample_steps: int = bounded(250, 1, 100000)
    timestep_spacing: str = choice("trailing", "trailing", "leading", "linspace")  # diffusers set_timesteps
    ddim_eta: float = bounded(0.0, 0.0, 1.0)
    cfg_scale: float = bounded(1.0, 0.0, 1000.0)  # classifier-free guidance scale; 1 = the conditional prediction

    @staticmethod
    def checks(c) -> Iterator[tuple[str, str]]:
        """Rules between fields (bounds and choices are in the field definitions)."""
        if not c.beta_start < c.beta_end:
            yield "beta_end", f"must be larger than diffusion.beta_start = {c.beta_start}"
