"""``mamba_ssm``-style initialisation of the SSM parameters shared by both layers."""
from __future__ import annotations

import math

import torch


def dt_bias_init(n: int, dt_min: float = 1e-3, dt_max: float = 0.1, dt_init_floor: float = 1e-4) -> torch.Tensor:
    """Bias whose softplus is a step size log-uniform in [dt_min, dt_max] (inverse-softplus init), shape n."""
    dt = torch.exp(torch.rand(n) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
    dt = dt.clamp(min=dt_init_floor)
    return dt + torch.log(-torch.expm1(-dt))  # softplus⁻¹(dt), stable for small dt
