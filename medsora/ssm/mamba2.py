"""Mamba-2 layer (scalar A per head, SSD scan): ``mamba_ssm.Mamba2``'s interface without its fused paths."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from medsora.ssm.chunked_ssd import given_output, keeps_output_for_recompute
from medsora.ssm.conv import CausalDepthwiseConv1d, next_conv_state
from medsora.ssm.dispatch import check_scan_impl, get_scan, resolve_scan_impl
from medsora.ssm.inference import layer_states
from medsora.ssm.init import dt_bias_init
from medsora.ssm.norm import RMSNormGated


class _KeptOutput:
    """The scan output of one checkpointed call, handed to its recomputation (the tensor itself is kept, and
    counted, as the input of the checkpointed norm + out_proj)."""

    y = None


class Mamba2Layer(nn.Module):
    """x: B×L×d_model -> B×L×d_model.

    in_proj → (z, xBC, dt); depthwise causal conv1d + SiLU on xBC; SSD scan with A = -exp(A_log)
    per head, dt = softplus(dt + dt_bias) clamped to ``dt_limit``, skip D (per head, or per channel
    with ``D_has_hdim``); gated RMSNorm with z (``rmsnorm``; otherwise the scan gates with silu(z));
    out_proj. With ``d_ssm < d_model·expand`` the remaining channels are a gated MLP, as in mamba_ssm.

    ``mamba_ssm.Mamba2``'s positional order, defaults (except ``chunk_size``: 64 suits the CPU and
    every chunk size gives the same result) and parameter names, so its state dicts load strictly.
    ``use_mem_eff_path`` and ``sequence_parallel`` select fused kernels / sharding there and change
    nothing here; ``process_group`` (tensor parallelism) is refused by name. ``scan_impl`` (keyword):
    ``auto | torch | cuda | ref`` (:mod:`medsora.ssm.dispatch`). ``recompute`` (keyword, default on):
    in training everything between in_proj and out_proj is recomputed in backward from the in_proj
    output (conv, scan, norm: about a fifth of the layer's forward work), so a layer keeps about 6
    layer-widths (d_model) of activations per token instead of about 16 (benchmarks/RESULTS.md).
    Where the CPU's chunked scan runs (sequences of whole chunks, longer than one; not packed) the scan's
    output is kept too (2 more widths) and the recomputed scan computes only its chunk states (about
    40 % of it): MedSora's spatial scans. The backbone sets it from ``model.mamba_recompute`` (``full`` =
    on, ``off``).
    """

    def __init__(self, d_model, d_state=128, d_conv=4, conv_init=None, expand=2, headdim=64, d_ssm=None, ngroups=1,
                 A_init_range=(1, 16), D_has_hdim=False, rmsnorm=True, norm_before_gate=False, dt_min=0.001,
                 dt_max=0.1, dt_init_floor=1e-4, dt_limit=(0.0, float("inf")), bias=False, conv_bias=True,
                 chunk_size=64, use_mem_eff_path=True, layer_idx=None, process_group=None, sequence_parallel=True,
                 device=None, dtype=None, *, scan_impl: str = "auto", norm_eps: float = 1e-5, recompute: bool = True):
        super().__init__()
        if process_group is not None:
            raise ValueError("Mamba2Layer: process_group (tensor parallelism) is not supported; shard with "
                             "trainer.strategy=fsdp instead")
        fk = {"device": device, "dtype": dtype}
        d_inner = expand * d_model
        d_ssm = d_inner if d_ssm is None else int(d_ssm)
        if d_ssm % headdim or d_ssm > d_inner:
            raise ValueError(f"Mamba2Layer: d_model·expand = {d_model}·{expand} = {d_inner} (d_ssm={d_ssm}) must be "
                             f"a multiple of headdim={headdim} (config keys model.hidden, model.expand, model.headdim)")
        nheads = d_ssm // headdim
        if nheads % ngroups:
            raise ValueError(f"Mamba2Layer: heads ({nheads}) must be a multiple of ngroups ({ngroups})")
        check_scan_impl("ssd", scan_impl)
        self.d_model, self.d_state, self.d_conv, self.expand, self.headdim = d_model, d_state, d_conv, expand, headdim
        self.d_inner, self.d_ssm, self.nheads, self.ngroups = d_inner, d_ssm, nheads, ngroups
        self.D_has_hdim, self.rmsnorm, self.norm_before_gate = D_has_hdim, rmsnorm, norm_before_gate
        self.dt_limit = (float(dt_limit[0]), float(dt_limit[1]))
        self.chunk_size, self.use_mem_eff_path, self.layer_idx, self.scan_impl = (
            chunk_size, use_mem_eff_path, layer_idx, scan_impl)
        self.recompute = recompute
        conv_dim = d_ssm + 2 * ngroups * d_state
        self.in_proj = nn.Linear(d_model, 2 * d_inner + 2 * ngroups * d_state + nheads, bias=bias, **fk)
        self.conv1d = CausalDepthwiseConv1d(conv_dim, d_conv, bias=conv_bias, **fk)
        if conv_init is not None:
            nn.init.uniform_(self.conv1d.weight, -conv_init, conv_init)
        self.dt_bias = nn.Parameter(dt_bias_init(nheads, dt_min, dt_max, dt_init_floor).to(**fk))
        self.A_log = nn.Parameter(torch.log(torch.empty(nheads, device=device).uniform_(*A_init_range)).to(dtype))
        self.D = nn.Parameter(torch.ones(d_ssm if D_has_hdim else nheads, device=device))
        for p in (self.dt_bias, self.A_log, self.D):
            p._no_weight_decay = True
        if rmsnorm:
            self.norm = RMSNormGated(d_ssm, eps=norm_eps, group_size=d_ssm // ngroups,
                                     norm_before_gate=norm_before_gate, **fk)
        self.out_proj = nn.Linear(d_inner, d_model, bias=bias, **fk)

    # ----------------------------------------------------------------------------------------- parts
    def _split(self, zxbcdt):
        d_mlp = (zxbcdt.shape[-1] - 2 * self.d_ssm - 2 * self.ngroups * self.d_state - self.nheads) // 2
        return torch.split(zxbcdt, [d_mlp, d_mlp, self.d_ssm, self.d_ssm + 2 * self.ngroups * self.d_state,
                                    self.nheads], dim=-1)

    def _D(self):
        return self.D.view(self.nheads, self.headdim) if self.D_has_hdim else self.D

    def _out(self, y, z, z0, x0):
        """Gated norm (unless ``z`` is None: normalised already, or the scan gated), the MLP channels,
        out_proj. y, z: …×d_ssm."""
        if self.rmsnorm and z is not None:
            y = self.norm(y, z)
        if z0.shape[-1] > 0:
            y = torch.cat([F.silu(z0) * x0, y], dim=-1)
        return self.out_proj(y)

    # --------------------------------------------------------------------------------------- forward
    def forward(self, u: torch.Tensor, seqlen=None, seq_idx=None, cu_seqlens=None, inference_params=None, *,
                reverse: bool = False):
        """u: B×L×d_model (or (B·L)×d_model with ``seqlen``) -> same shape.

        ``seq_idx`` (B×L) packs several sequences in a row (state and conv restart where it changes);
        ``inference_params`` (:class:`medsora.ssm.inference.InferenceParams`) carries conv and SSM states.
        ``reverse`` (keyword, not in mamba_ssm) scans from the last step: ``layer(u.flip(1)).flip(1)``, with
        the flip after in_proj (a per-token map), so the tensor in_proj keeps for backward is ``u`` itself,
        shared with a forward scan over the same ``u`` (MedSora's bidirectional scans).
        """
        if reverse and (seqlen is not None or seq_idx is not None or inference_params is not None):
            raise ValueError("Mamba2Layer: reverse=True takes a plain B×L×d_model input (no seqlen, seq_idx or "
                             "inference_params)")
        flat = seqlen is not None
        if flat:
            u = u.view(-1, seqlen, u.shape[-1])
        if u.dim() != 3 or u.shape[-1] != self.d_model:
            raise ValueError(f"Mamba2Layer: expected x of shape B×L×{self.d_model}, got {tuple(u.shape)}")
        b, l, _ = u.shape
        conv_state = ssm_state = None
        if inference_params is not None:
            conv_state, ssm_state = layer_states(self, inference_params, b)
            if inference_params.seqlen_offset > 0 and l == 1:
                return self.step(u, conv_state, ssm_state)[0]
            if inference_params.seqlen_offset == 0:  # a fresh sequence: the cache is overwritten
                conv_state.zero_()
                ssm_state.zero_()
        zxbcdt = self.in_proj(u)
        if reverse:
            zxbcdt = zxbcdt.flip(1)
        if conv_state is None and self.recompute and torch.is_grad_enabled():
            # Everything between the two projections recomputed in backward from the in_proj output, the
            # one layer-wide tensor kept (as mamba_ssm's fused path keeps zxbcdt): conv, SiLU, the scan's
            # inputs, chunk states and output, the skip, the gated norm and out_proj's input are not.
            # Where the scan's CPU core can (long sequences: the spatial scans), the scan's output is kept
            # too (2 of about 16 layer-widths per token) so that its recomputation computes the chunk states
            # only, about 40 % of the scan: two checkpointed parts, conv + scan and norm + out_proj.
            if self.rmsnorm and resolve_scan_impl("ssd", self.scan_impl, zxbcdt.device) == "torch" and \
                    keeps_output_for_recompute(zxbcdt, l, self.chunk_size, seq_idx):
                z0, x0, z, _, _ = self._split(zxbcdt)
                y = checkpoint(self._scan_keeping_output, zxbcdt, seq_idx, _KeptOutput(), use_reentrant=False)
                out = checkpoint(self._out, y, z, z0, x0, use_reentrant=False)
            else:
                out = checkpoint(self._mixer, zxbcdt, seq_idx, use_reentrant=False)
        else:
            out = self._mixer(zxbcdt, seq_idx, conv_state, ssm_state, inference_params)
        if reverse:
            out = out.flip(1)
        return out.reshape(b * l, -1) if flat else out

    def _mixer(self, zxbcdt, seq_idx=None, conv_state=None, ssm_state=None, inference_params=None):
        """in_proj output B×L×(2·d_inner + 2·ngroups·d_state + heads) -> out_proj output B×L×d_model:
        conv + SiLU, SSD scan with skip D (and the silu(z) gate without ``rmsnorm``), gated norm, out_proj.
        Carries the conv and SSM states when given (recurrent inference)."""
        z0, x0, z, _, _ = self._split(zxbcdt)
        return self._out(self._scan(zxbcdt, seq_idx, conv_state, ssm_state, inference_params), z, z0, x0)

    def _scan_keeping_output(self, zxbcdt, seq_idx, kept: "_KeptOutput"):
        """:meth:`_scan` whose output the caller keeps (the input of the checkpointed norm + out_proj). Run
        again in backward, the scan takes that output back (:func:`medsora.ssm.chunked_ssd.given_output`)
        and computes only the chunk states; the values are those of the first run, so gradients are
        bit-equal to the path that saves everything."""
        b, l = zxbcdt.shape[:2]
        given = None if kept.y is None else kept.y.detach().view(b, l, self.nheads, self.headdim)
        with given_output(given):
            y = self._scan(zxbcdt, seq_idx)
        if kept.y is None:
            kept.y = y
        return y

    def _scan(self, zxbcdt, seq_idx=None, conv_state=None, ssm_state=None, inference_params=None):
        """in_proj output -> the scan's output B×L×d_ssm (conv + SiLU, SSD with skip D, and the silu(z) gate
        without ``rmsnorm``), before the norm."""
        b, l = zxbcdt.shape[:2]
        _, _, z, xbc, dt = self._split(zxbcdt)
        path = resolve_scan_impl("ssd", self.scan_impl, zxbcdt.device)
        xbc_t = xbc.transpose(1, 2)
        conv_in = conv_state if (conv_state is not None and inference_params.seqlen_offset > 0) else None
        xbc = self.conv1d(xbc_t, use_kernel=path == "cuda", state=conv_in, seq_idx=seq_idx).transpose(1, 2)
        if conv_state is not None:  # after the conv read it
            conv_state.copy_(next_conv_state(conv_in, xbc_t, self.d_conv))
        xs, B, C = xbc.split([self.d_ssm, self.ngroups * self.d_state, self.ngroups * self.d_state], dim=-1)
        scan = get_scan("ssd", self.scan_impl, zxbcdt.device)
        kw = {"dt_limit": self.dt_limit} if self.dt_limit != (0.0, float("inf")) else {}
        if seq_idx is not None:
            kw["seq_idx"] = seq_idx
        y = scan(xs.reshape(b, l, self.nheads, self.headdim), dt, -torch.exp(self.A_log.float()),
                 B.reshape(b, l, self.ngroups, self.d_state), C.reshape(b, l, self.ngroups, self.d_state),
                 self.chunk_size, self._D(), None if self.rmsnorm else z.reshape(b, l, self.nheads, self.headdim),
                 self.dt_bias, ssm_state.float() if conv_in is not None else None, dt_softplus=True,
                 return_final_states=ssm_state is not None, **kw)
        if ssm_state is not None:
            y, last = y
            ssm_state.copy_(last)
        return y.reshape(b, l, self.d_ssm)

    # ------------------------------------------------------------------------------------ recurrent
    def allocate_inference_cache(self, batch_size, max_seqlen=None, dtype=None, **kwargs):
        """``(conv_state: B×conv_dim×d_conv, ssm_state: B×heads×headdim×d_state)``, zeros (as mamba_ssm)."""
        w = self.in_proj.weight
        conv_state = torch.zeros(batch_size, self.conv1d.weight.shape[0], self.d_conv, device=w.device,
                                 dtype=dtype or self.conv1d.weight.dtype)
        ssm_state = torch.zeros(batch_size, self.nheads, self.headdim, self.d_state, device=w.device,
                                dtype=dtype or w.dtype)
        return conv_state, ssm_state

    def step(self, hidden_states, conv_state, ssm_state):
        """One step: hidden_states B×1×d_model -> (out B×1×d_model, conv_state, ssm_state), states updated
        in place (``mamba_ssm.Mamba2.step``; any ngroups)."""
        if hidden_states.dim() != 3 or hidden_states.shape[1] != 1:
            raise ValueError(f"Mamba2Layer.step: expected one step B×1×{self.d_model}, got "
                             f"{tuple(hidden_states.shape)}")
        dtype = hidden_states.dtype
        z0, x0, z, xbc, dt = self._split(self.in_proj(hidden_states.squeeze(1)))
        xbc = self.conv1d.step(xbc, conv_state)
        x, B, C = torch.split(xbc, [self.d_ssm, self.ngroups * self.d_state, self.ngroups * self.d_state], dim=-1)
        A = -torch.exp(self.A_log.float())
        dt = F.softplus(dt.float() + self.dt_bias.float())
        if self.dt_limit != (0.0, float("inf")):
            dt = dt.clamp(*self.dt_limit)
        hg = self.nheads // self.ngroups
        x = x.float().view(-1, self.ngroups, hg, self.headdim)
        Bg, Cg = B.float().view(-1, self.ngroups, self.d_state), C.float().view(-1, self.ngroups, self.d_state)
        dtg = dt.view(-1, self.ngroups, hg)
        state = ssm_state.float().view(-1, self.ngroups, hg, self.headdim, self.d_state)
        state = state * torch.exp(dtg * A.view(self.ngroups, hg))[..., None, None] + \
            torch.einsum("bgk,bgkp,bgn->bgkpn", dtg, x, Bg)
        ssm_state.copy_(state.view_as(ssm_state))
        y = torch.einsum("bgkpn,bgn->bgkp", state, Cg)
        D = self._D().float()
        y = (y + x * (D.view(self.ngroups, hg, -1))).reshape(-1, self.d_ssm)
        if not self.rmsnorm:
            y = y * F.silu(z.float())
        out = self._out(y.to(dtype), z, z0, x0)
        return out.unsqueeze(1), conv_state, ssm_state
