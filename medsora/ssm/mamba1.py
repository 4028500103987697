"""Mamba-1 layer (per-channel diagonal A, selective scan S6), after ``mamba_ssm.Mamba``."""
from __future__ import annotations

import math

import torch
from torch import nn

from medsora.ssm.conv import CausalDepthwiseConv1d
from medsora.ssm.dispatch import check_scan_impl, get_scan, resolve_scan_impl
from medsora.ssm.init import dt_bias_init
from medsora.ssm.norm import RMSNormGated


class Mamba1Layer(nn.Module):
    """x: B×L×d_model -> B×L×d_model.

    in_proj → (x, z); depthwise causal conv1d + SiLU; x_proj → (dt_rank, B, C); dt_proj; S6 scan with
    A = -exp(A_log) (d_inner×d_state, S4D-real init), Δ = softplus(dt + bias), skip D; gated RMSNorm
    with z (``mamba_ssm.Mamba`` gates with y·silu(z) only; the normalisation is added so both MedSora
    layers share the same output statistics); out_proj.
    """

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2, dt_rank="auto",
                 scan_impl: str = "auto", dt_min: float = 1e-3, dt_max: float = 0.1, dt_init_floor: float = 1e-4,
                 dt_scale: float = 1.0, bias: bool = False, conv_bias: bool = True, norm_eps: float = 1e-5):
        super().__init__()
        d_inner = expand * d_model
        dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        check_scan_impl("selective_scan", scan_impl)
        self.d_model, self.d_state, self.d_inner, self.dt_rank, self.scan_impl = (
            d_model, d_state, d_inner, dt_rank, scan_impl)
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=bias)
        self.conv1d = CausalDepthwiseConv1d(d_inner, d_conv, bias=conv_bias)
        self.x_proj = nn.Linear(d_inner, dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(dt_rank, d_inner, bias=True)
        std = dt_rank ** -0.5 * dt_scale
        nn.init.uniform_(self.dt_proj.weight, -std, std)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt_bias_init(d_inner, dt_min, dt_max, dt_init_floor))
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(d_inner, 1)
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(d_inner))
        self.norm = RMSNormGated(d_inner, eps=norm_eps)
        self.out_proj = nn.Linear(d_inner, d_model, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"Mamba1Layer: expected x of shape B×L×{self.d_model}, got {tuple(x.shape)}")
        xs, z = self.in_proj(x).chunk(2, dim=-1)
        path = resolve_scan_impl("selective_scan", self.scan_impl, x.device)
        xs = self.conv1d(xs.transpose(1, 2), use_kernel=path == "cuda")  # b d l
        dt, B, C = self.x_proj(xs.transpose(1, 2)).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = (dt @ self.dt_proj.weight.t()).transpose(1, 2)  # b d l; bias goes in as delta_bias
        scan = get_scan("selective_scan", self.scan_impl, x.device)
        y = scan(xs, dt, -torch.exp(self.A_log.float()), B.transpose(1, 2), C.transpose(1, 2),
                 D=self.D.float(), delta_bias=self.dt_proj.bias.float(), delta_softplus=True)
        return self.out_proj(self.norm(y.transpose(1, 2), z))
