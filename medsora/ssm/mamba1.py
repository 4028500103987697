"""Mamba-1 layer (per-channel diagonal A, selective scan S6): ``mamba_ssm.Mamba``'s interface."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from medsora.ssm.conv import CausalDepthwiseConv1d, next_conv_state
from medsora.ssm.dispatch import check_scan_impl, get_scan, resolve_scan_impl
from medsora.ssm.inference import layer_states
from medsora.ssm.init import dt_bias_init
from medsora.ssm.norm import RMSNormGated


class Mamba1Layer(nn.Module):
    """x: B×L×d_model -> B×L×d_model.

    in_proj → (x, z); depthwise causal conv1d + SiLU; x_proj → (dt_rank, B, C); dt_proj; S6 scan with
    A = -exp(A_log) (d_inner×d_state, S4D-real init), Δ = softplus(dt + bias), skip D; gate y·silu(z)
    (``mamba_ssm.Mamba``), or with ``rmsnorm=True`` (keyword; MedSora's backbone) a gated RMSNorm
    ``rmsnorm(y·silu(z))`` so both MedSora layers share the same output statistics; out_proj.

    ``mamba_ssm.Mamba``'s positional order, defaults and parameter names (its state dicts load
    strictly when ``rmsnorm=False``); ``use_fast_path`` selects a fused kernel there and changes
    nothing here.
    """

    def __init__(self, d_model, d_state=16, d_conv=4, expand=2, dt_rank="auto", dt_min=0.001, dt_max=0.1,
                 dt_init="random", dt_scale=1.0, dt_init_floor=1e-4, conv_bias=True, bias=False, use_fast_path=True,
                 layer_idx=None, device=None, dtype=None, *, rmsnorm: bool = False, scan_impl: str = "auto",
                 norm_eps: float = 1e-5):
        super().__init__()
        if dt_init not in ("random", "constant"):
            raise ValueError(f"Mamba1Layer: dt_init={dt_init!r} must be 'random' or 'constant'")
        fk = {"device": device, "dtype": dtype}
        d_inner = int(expand * d_model)
        dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        check_scan_impl("selective_scan", scan_impl)
        self.d_model, self.d_state, self.d_conv, self.expand = d_model, d_state, d_conv, expand
        self.d_inner, self.dt_rank, self.scan_impl, self.layer_idx = d_inner, dt_rank, scan_impl, layer_idx
        self.use_fast_path, self.rmsnorm = use_fast_path, rmsnorm
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=bias, **fk)
        self.conv1d = CausalDepthwiseConv1d(d_inner, d_conv, bias=conv_bias, **fk)
        self.x_proj = nn.Linear(d_inner, dt_rank + 2 * d_state, bias=False, **fk)
        self.dt_proj = nn.Linear(dt_rank, d_inner, bias=True, **fk)
        std = dt_rank ** -0.5 * dt_scale
        if dt_init == "constant":
            nn.init.constant_(self.dt_proj.weight, std)
        else:
            nn.init.uniform_(self.dt_proj.weight, -std, std)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt_bias_init(d_inner, dt_min, dt_max, dt_init_floor))
        A = torch.arange(1, d_state + 1, dtype=torch.float32, device=device).repeat(d_inner, 1)
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(d_inner, device=device))
        self.A_log._no_weight_decay = self.D._no_weight_decay = True
        if rmsnorm:
            self.norm = RMSNormGated(d_inner, eps=norm_eps, **fk)
        self.out_proj = nn.Linear(d_inner, d_model, bias=bias, **fk)

    def _scan_inputs(self, xs):
        """xs: b×d×l (after the conv) -> (dt without bias b×d×l, B b×n×l, C b×n×l)."""
        dt, B, C = self.x_proj(xs.transpose(1, 2)).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        return (dt @ self.dt_proj.weight.t()).transpose(1, 2), B.transpose(1, 2), C.transpose(1, 2)

    def _out(self, y, z):
        """y, z: …×d_inner -> out_proj of the gated output (the scan gated already without rmsnorm)."""
        return self.out_proj(self.norm(y, z) if self.rmsnorm else y)

    def forward(self, hidden_states: torch.Tensor, inference_params=None) -> torch.Tensor:
        x = hidden_states
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"Mamba1Layer: expected x of shape B×L×{self.d_model}, got {tuple(x.shape)}")
        b, l, _ = x.shape
        conv_state = ssm_state = carried = None
        if inference_params is not None:
            conv_state, ssm_state = layer_states(self, inference_params, b)
            if inference_params.seqlen_offset > 0 and l == 1:
                return self.step(x, conv_state, ssm_state)[0]
            carried = inference_params.seqlen_offset > 0
        xs, z = self.in_proj(x).chunk(2, dim=-1)
        path = resolve_scan_impl("selective_scan", self.scan_impl, x.device)
        xs_t = xs.transpose(1, 2)
        conv_in = conv_state if carried else None
        xs = self.conv1d(xs_t, use_kernel=path == "cuda", state=conv_in)  # b d l
        if conv_state is not None:  # after the conv read it
            conv_state.copy_(next_conv_state(conv_in, xs_t, self.d_conv))
        dt, B, C = self._scan_inputs(xs)
        scan = get_scan("selective_scan", self.scan_impl, x.device)
        extra = {"initial_state": ssm_state.float()} if carried else {}
        y = scan(xs, dt, -torch.exp(self.A_log.float()), B, C, self.D.float(),
                 None if self.rmsnorm else z.transpose(1, 2), self.dt_proj.bias.float(), True,
                 ssm_state is not None, **extra)
        if ssm_state is not None:
            y, last = y
            ssm_state.copy_(last)
        return self._out(y.transpose(1, 2), z)

    def allocate_inference_cache(self, batch_size, max_seqlen=None, dtype=None, **kwargs):
        """``(conv_state: B×d_inner×d_conv, ssm_state: B×d_inner×d_state)``, zeros (as mamba_ssm)."""
        w = self.in_proj.weight
        conv_state = torch.zeros(batch_size, self.d_inner, self.d_conv, device=w.device,
                                 dtype=dtype or self.conv1d.weight.dtype)
        ssm_state = torch.zeros(batch_size, self.d_inner, self.d_state, device=w.device, dtype=dtype or w.dtype)
        return conv_state, ssm_state

    def step(self, hidden_states, conv_state, ssm_state):
        """One step B×1×d_model -> (out B×1×d_model, conv_state, ssm_state), states updated in place."""
        if hidden_states.dim() != 3 or hidden_states.shape[1] != 1:
            raise ValueError(f"Mamba1Layer.step: expected one step B×1×{self.d_model}, got "
                             f"{tuple(hidden_states.shape)}")
        dtype = hidden_states.dtype
        x, z = self.in_proj(hidden_states.squeeze(1)).chunk(2, dim=-1)
        x = self.conv1d.step(x, conv_state)
        dt, B, C = self._scan_inputs(x[..., None])
        dt, B, C = dt[..., 0].float(), B[..., 0].float(), C[..., 0].float()
        A = -torch.exp(self.A_log.float())
        dt = F.softplus(dt + self.dt_proj.bias.float())
        state = ssm_state.float() * torch.exp(dt[..., None] * A) + (dt * x.float())[..., None] * B[:, None]
        ssm_state.copy_(state)
        y = (state * C[:, None]).sum(-1) + self.D.float() * x.float()
        if not self.rmsnorm:
            y = y * F.silu(z.float())
        return self._out(y.to(dtype), z).unsqueeze(1), conv_state, ssm_state
