"""Pure-PyTorch reference functions copied from state-spaces/mamba (Apache-2.0), as an independent check.

Copied verbatim (commit e9594ce of github.com/state-spaces/mamba) except for removed imports of CUDA
code and the complex-valued branches: ``segsum`` and ``ssd_minimal_discrete`` from
``mamba_ssm/modules/ssd_minimal.py`` (Listing 1 of the Mamba-2 paper), ``selective_scan_ref`` from
``mamba_ssm/ops/selective_scan_interface.py``, ``rms_norm_ref`` from
``mamba_ssm/ops/triton/layernorm_gated.py``, and the forward (``use_mem_eff_path=False``, no
``causal_conv1d``) and ``step`` (no ``selective_state_update``) of ``mamba_ssm/modules/mamba2.py``
and ``mamba_simple.py`` as functions of a state dict. MedSora's code is not used here.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange, repeat


def segsum(x):
    """More stable segment sum calculation."""
    T = x.size(-1)
    x = repeat(x, "... d -> ... d e", e=T)
    mask = torch.tril(torch.ones(T, T, device=x.device, dtype=bool), diagonal=-1)
    x = x.masked_fill(~mask, 0)
    x_segsum = torch.cumsum(x, dim=-2)
    mask = torch.tril(torch.ones(T, T, device=x.device, dtype=bool), diagonal=0)
    x_segsum = x_segsum.masked_fill(~mask, -torch.inf)
    return x_segsum


def ssd_minimal_discrete(X, A, B, C, block_len, initial_states=None):
    """
    Arguments:
        X: (batch, length, n_heads, d_head)
        A: (batch, length, n_heads)
        B: (batch, length, n_heads, d_state)
        C: (batch, length, n_heads, d_state)
    Return:
        Y: (batch, length, n_heads, d_head)
    """
    assert X.dtype == A.dtype == B.dtype == C.dtype
    assert X.shape[1] % block_len == 0

    # Rearrange into blocks/chunks
    X, A, B, C = [rearrange(x, "b (c l) ... -> b c l ...", l=block_len) for x in (X, A, B, C)]

    A = rearrange(A, "b c l h -> b h c l")
    A_cumsum = torch.cumsum(A, dim=-1)

    # 1. Compute the output for each intra-chunk (diagonal blocks)
    L = torch.exp(segsum(A))
    Y_diag = torch.einsum("bclhn,bcshn,bhcls,bcshp->bclhp", C, B, L, X)

    # 2. Compute the state for each intra-chunk
    decay_states = torch.exp((A_cumsum[:, :, :, -1:] - A_cumsum))
    states = torch.einsum("bclhn,bhcl,bclhp->bchpn", B, decay_states, X)

    # 3. Compute the inter-chunk SSM recurrence
    if initial_states is None:
        initial_states = torch.zeros_like(states[:, :1])
    states = torch.cat([initial_states, states], dim=1)
    decay_chunk = torch.exp(segsum(F.pad(A_cumsum[:, :, :, -1], (1, 0))))
    new_states = torch.einsum("bhzc,bchpn->bzhpn", decay_chunk, states)
    states, final_state = new_states[:, :-1], new_states[:, -1]

    # 4. Compute state -> output conversion per chunk
    state_decay_out = torch.exp(A_cumsum)
    Y_off = torch.einsum('bclhn,bchpn,bhcl->bclhp', C, states, state_decay_out)

    Y = rearrange(Y_diag + Y_off, "b c l h p -> b (c l) h p")
    return Y, final_state


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                       return_last_state=False):
    """u, delta: (B D L); A: (D N); B, C: (B N L) or (B G N L); D: (D); z: (B D L); delta_bias: (D)."""
    dtype_in = u.dtype
    u = u.float()
    delta = delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias[..., None].float()
    if delta_softplus:
        delta = F.softplus(delta)
    batch, dim, dstate = u.shape[0], A.shape[0], A.shape[1]
    B = B.float()
    C = C.float()
    x = A.new_zeros((batch, dim, dstate))
    ys = []
    deltaA = torch.exp(torch.einsum('bdl,dn->bdln', delta, A))
    if B.dim() == 3:
        deltaB_u = torch.einsum('bdl,bnl,bdl->bdln', delta, B, u)
    else:
        B = repeat(B, "B G N L -> B (G H) N L", H=dim // B.shape[1])
        deltaB_u = torch.einsum('bdl,bdnl,bdl->bdln', delta, B, u)
    if C.dim() == 4:
        C = repeat(C, "B G N L -> B (G H) N L", H=dim // C.shape[1])
    last_state = None
    for i in range(u.shape[2]):
        x = deltaA[:, :, i] * x + deltaB_u[:, :, i]
        if C.dim() == 3:
            y = torch.einsum('bdn,bn->bd', x, C[:, :, i])
        else:
            y = torch.einsum('bdn,bdn->bd', x, C[:, :, :, i])
        if i == u.shape[2] - 1:
            last_state = x
        ys.append(y)
    y = torch.stack(ys, dim=2)  # (batch dim L)
    out = y if D is None else y + u * rearrange(D, "d -> d 1")
    if z is not None:
        out = out * F.silu(z)
    out = out.to(dtype=dtype_in)
    return out if not return_last_state else (out, last_state)


def rms_norm_ref(x, weight, bias, z=None, eps=1e-6, group_size=None, norm_before_gate=True, upcast=True):
    dtype = x.dtype
    weight = weight.float()
    bias = bias.float() if bias is not None else None
    if upcast:
        x = x.float()
        z = z.float() if z is not None else z
    if z is not None and not norm_before_gate:
        x = x * F.silu(z)
    if group_size is None:
        rstd = 1 / torch.sqrt((x.square()).mean(dim=-1, keepdim=True) + eps)
        out = (x * rstd * weight) + bias if bias is not None else (x * rstd * weight)
    else:
        x_group = rearrange(x, "... (g d) -> ... g d", d=group_size)
        rstd = 1 / torch.sqrt((x_group.square()).mean(dim=-1, keepdim=True) + eps)
        out = rearrange(x_group * rstd, "... g d -> ... (g d)") * weight
        if bias is not None:
            out = out + bias
    if z is not None and norm_before_gate:
        out *= F.silu(z)
    return out.to(dtype)


def mamba2_forward(sd, u, *, d_state, d_conv, headdim, ngroups, D_has_hdim, rmsnorm, norm_before_gate,
                   chunk_size):
    """``Mamba2.forward`` with ``use_mem_eff_path=False``, no causal_conv1d, ``mamba_chunk_scan_combined``
    written as ssd_minimal_discrete (B/C repeated over the heads of a group, X = x·dt, A = A·dt)."""
    batch, seqlen, dim = u.shape
    zxbcdt = u @ sd["in_proj.weight"].t()
    A = -torch.exp(sd["A_log"].float())
    nheads = A.shape[0]
    d_ssm = nheads * headdim
    z, xBC, dt = torch.split(zxbcdt, [d_ssm, d_ssm + 2 * ngroups * d_state, nheads], dim=-1)
    xBC = F.silu(F.conv1d(xBC.transpose(1, 2), sd["conv1d.weight"], sd.get("conv1d.bias"), padding=d_conv - 1,
                          groups=xBC.shape[-1]).transpose(1, 2)[:, :-(d_conv - 1)])
    x, B, C = torch.split(xBC, [d_ssm, ngroups * d_state, ngroups * d_state], dim=-1)
    x = rearrange(x, "b l (h p) -> b l h p", p=headdim)
    B = repeat(rearrange(B, "b l (g n) -> b l g n", g=ngroups), "b l g n -> b l (g k) n", k=nheads // ngroups)
    C = repeat(rearrange(C, "b l (g n) -> b l g n", g=ngroups), "b l g n -> b l (g k) n", k=nheads // ngroups)
    dt = F.softplus(dt + sd["dt_bias"])
    pad = -seqlen % chunk_size
    Y, _ = ssd_minimal_discrete(*(F.pad(t, (0, 0) * (t.dim() - 2) + (0, pad)) for t in
                                  (x * dt[..., None], A * dt, B, C)), chunk_size)
    y = Y[:, :seqlen]
    D = rearrange(sd["D"], "(h p) -> h p", p=headdim) if D_has_hdim else sd["D"][:, None]
    y = y + x * D
    if not rmsnorm:
        y = y * F.silu(rearrange(z, "b l (h p) -> b l h p", p=headdim))
    y = rearrange(y, "b l h p -> b l (h p)")
    if rmsnorm:
        y = rms_norm_ref(y, sd["norm.weight"], None, z=z, eps=1e-5, group_size=d_ssm // ngroups,
                         norm_before_gate=norm_before_gate)
    return y @ sd["out_proj.weight"].t()


def mamba1_forward(sd, u, *, d_state, d_conv, dt_rank):
    """``Mamba.forward`` (slow path: nn.Conv1d + selective_scan_ref) as a function of a state dict."""
    seqlen = u.shape[1]
    xz = rearrange(sd["in_proj.weight"] @ rearrange(u, "b l d -> d (b l)"), "d (b l) -> b d l", l=seqlen)
    A = -torch.exp(sd["A_log"].float())
    x, z = xz.chunk(2, dim=1)
    x = F.silu(F.conv1d(x, sd["conv1d.weight"], sd.get("conv1d.bias"), padding=d_conv - 1,
                        groups=x.shape[1])[..., :seqlen])
    x_dbl = F.linear(rearrange(x, "b d l -> (b l) d"), sd["x_proj.weight"])
    dt, B, C = torch.split(x_dbl, [dt_rank, d_state, d_state], dim=-1)
    dt = rearrange(sd["dt_proj.weight"] @ dt.t(), "d (b l) -> b d l", l=seqlen)
    B = rearrange(B, "(b l) dstate -> b dstate l", l=seqlen).contiguous()
    C = rearrange(C, "(b l) dstate -> b dstate l", l=seqlen).contiguous()
    y = selective_scan_ref(x, dt, A, B, C, sd["D"].float(), z=z, delta_bias=sd["dt_proj.bias"].float(),
                           delta_softplus=True)
    return rearrange(y, "b d l -> b l d") @ sd["out_proj.weight"].t()
