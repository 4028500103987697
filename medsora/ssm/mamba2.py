"""Mamba-2 layer (scalar A per head, SSD scan), as ``mamba_ssm.Mamba2`` without its fused paths."""
from __future__ import annotations

import torch
from torch import nn

from medsora.ssm.conv import CausalDepthwiseConv1d
from medsora.ssm.dispatch import check_scan_impl, get_scan, resolve_scan_impl
from medsora.ssm.init import dt_bias_init
from medsora.ssm.norm import RMSNormGated


class Mamba2Layer(nn.Module):
    """x: B×L×d_model -> B×L×d_model.

    in_proj → (z, xBC, dt); depthwise causal conv1d + SiLU on xBC; SSD scan with A = -exp(A_log)
    per head, dt = softplus(dt + dt_bias), skip D; gated RMSNorm with z; out_proj.
    ``d_model·expand`` must be a multiple of ``headdim``; heads = d_model·expand / headdim.
    """

    def __init__(self, d_model: int, d_state: int = 128, headdim: int = 64, expand: int = 2, d_conv: int = 4,
                 ngroups: int = 1, chunk_size: int = 64, scan_impl: str = "auto",
                 A_init_range=(1.0, 16.0), dt_min: float = 1e-3, dt_max: float = 0.1, dt_init_floor: float = 1e-4,
                 bias: bool = False, conv_bias: bool = True, norm_eps: float = 1e-5):
        super().__init__()
        d_inner = expand * d_model
        if d_inner % headdim:
            raise ValueError(f"Mamba2Layer: d_model·expand = {d_model}·{expand} = {d_inner} must be a multiple of "
                             f"headdim={headdim} (config keys model.hidden, model.expand, model.headdim)")
        nheads = d_inner // headdim
        if nheads % ngroups:
            raise ValueError(f"Mamba2Layer: heads ({nheads}) must be a multiple of ngroups ({ngroups})")
        check_scan_impl("ssd", scan_impl)
        self.d_model, self.d_state, self.headdim, self.d_inner = d_model, d_state, headdim, d_inner
        self.nheads, self.ngroups, self.chunk_size, self.scan_impl = nheads, ngroups, chunk_size, scan_impl
        conv_dim = d_inner + 2 * ngroups * d_state
        self.in_proj = nn.Linear(d_model, 2 * d_inner + 2 * ngroups * d_state + nheads, bias=bias)
        self.conv1d = CausalDepthwiseConv1d(conv_dim, d_conv, bias=conv_bias)
        self.dt_bias = nn.Parameter(dt_bias_init(nheads, dt_min, dt_max, dt_init_floor))
        self.A_log = nn.Parameter(torch.log(torch.empty(nheads).uniform_(*A_init_range)))
        self.D = nn.Parameter(torch.ones(nheads))
        self.norm = RMSNormGated(d_inner, eps=norm_eps, group_size=d_inner // ngroups)
        self.out_proj = nn.Linear(d_inner, d_model, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"Mamba2Layer: expected x of shape B×L×{self.d_model}, got {tuple(x.shape)}")
        b, l, _ = x.shape
        z, xbc, dt = self.in_proj(x).split(
            [self.d_inner, self.d_inner + 2 * self.ngroups * self.d_state, self.nheads], dim=-1)
        path = resolve_scan_impl("ssd", self.scan_impl, x.device)
        xbc = self.conv1d(xbc.transpose(1, 2), use_kernel=path == "cuda").transpose(1, 2)
        xs, B, C = xbc.split([self.d_inner, self.ngroups * self.d_state, self.ngroups * self.d_state], dim=-1)
        scan = get_scan("ssd", self.scan_impl, x.device)
        y = scan(xs.reshape(b, l, self.nheads, self.headdim), dt, -torch.exp(self.A_log.float()),
                 B.reshape(b, l, self.ngroups, self.d_state), C.reshape(b, l, self.ngroups, self.d_state),
                 self.chunk_size, D=self.D, dt_bias=self.dt_bias, dt_softplus=True)
        return self.out_proj(self.norm(y.reshape(b, l, self.d_inner), z))
