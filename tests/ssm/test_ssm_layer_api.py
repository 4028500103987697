"""Mamba2Layer / Mamba1Layer as drop-ins for mamba_ssm's Mamba2 / Mamba: positional order, strict state-dict
loading checked against mamba_ssm's own forward (tests/ssm/mamba_ssm_refs.py), recurrent inference (step,
inference cache, continuing a sequence), packed sequences."""
from __future__ import annotations

import math

import pytest
import torch

from medsora.ssm import Mamba1Layer, Mamba2Layer, seq_idx_from_cu_seqlens
from medsora.ssm.inference import InferenceParams


def test_positional_order_is_mamba_ssm_s():
    layer = Mamba2Layer(256, 64, 4)  # mamba_ssm: d_model, d_state, d_conv (it used to build headdim 4)
    assert (layer.d_state, layer.d_conv, layer.headdim, layer.expand) == (64, 4, 64, 2)
    layer = Mamba2Layer(32, 16, 4, None, 2, 16, None, 2)
    assert (layer.headdim, layer.ngroups, layer.nheads) == (16, 2, 4)
    m1 = Mamba1Layer(32, 8, 3, 2, 5)
    assert (m1.d_state, m1.d_conv, m1.expand, m1.dt_rank) == (8, 3, 2, 5)


def mamba2_state_dict(d_model, d_state, d_conv, expand, headdim, ngroups, D_has_hdim, rmsnorm, d_ssm=None, seed=0):
    """Parameter names and shapes of mamba_ssm.Mamba2.__init__, random values."""
    gen = torch.Generator().manual_seed(seed)
    d_inner = expand * d_model
    d_ssm = d_inner if d_ssm is None else d_ssm
    nheads = d_ssm // headdim
    conv_dim = d_ssm + 2 * ngroups * d_state
    r = lambda *s, scale=0.3: torch.randn(*s, generator=gen) * scale  # noqa: E731
    sd = {"in_proj.weight": r(2 * d_inner + 2 * ngroups * d_state + nheads, d_model),
          "conv1d.weight": r(conv_dim, 1, d_conv), "conv1d.bias": r(conv_dim), "dt_bias": r(nheads, scale=1.0) - 2,
          "A_log": torch.rand(nheads, generator=gen) * math.log(16), "D": r(d_ssm if D_has_hdim else nheads, scale=1.0),
          "out_proj.weight": r(d_model, d_inner)}
    if rmsnorm:
        sd["norm.weight"] = 1 + r(d_ssm)
    return sd


MAMBA2_CASES = {
    "default": dict(ngroups=1, D_has_hdim=False, rmsnorm=True, norm_before_gate=False),
    "groups_hdim_norm_first": dict(ngroups=2, D_has_hdim=True, rmsnorm=True, norm_before_gate=True),
    "no_rmsnorm": dict(ngroups=1, D_has_hdim=False, rmsnorm=False, norm_before_gate=False),
}


@pytest.mark.parametrize("case", MAMBA2_CASES)
@pytest.mark.parametrize("l", [5, 37])
def test_mamba2_loads_a_mamba_ssm_state_dict_and_matches_its_forward(mamba_refs, case, l):
    opts = MAMBA2_CASES[case]
    dims = dict(d_model=16, d_state=8, d_conv=4, expand=2, headdim=8)
    sd = mamba2_state_dict(**dims, ngroups=opts["ngroups"], D_has_hdim=opts["D_has_hdim"], rmsnorm=opts["rmsnorm"])
    layer = Mamba2Layer(**dims, **opts, chunk_size=16)
    layer.load_state_dict(sd, strict=True)
    u = torch.randn(2, l, 16, generator=torch.Generator().manual_seed(1))
    ref = mamba_refs.mamba2_forward(sd, u, d_state=8, d_conv=4, headdim=8, chunk_size=16, **opts)
    torch.testing.assert_close(layer(u), ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(layer(u.reshape(-1, 16), seqlen=l), ref.reshape(-1, 16), rtol=1e-4, atol=1e-5)


def test_mamba2_with_a_gated_mlp_part(mamba_refs):
    """d_ssm < d_model·expand: the remaining channels are silu(z0)·x0 (mamba_ssm), concatenated first."""
    sd = mamba2_state_dict(16, 8, 4, 2, 8, 1, False, True, d_ssm=16)
    layer = Mamba2Layer(16, 8, 4, expand=2, headdim=8, d_ssm=16)
    layer.load_state_dict(sd, strict=True)
    u = torch.randn(1, 9, 16)
    zx = u @ sd["in_proj.weight"][:32].t()
    z0, x0 = zx[..., :16], zx[..., 16:32]  # d_mlp = d_model·expand - d_ssm = 16 channels each
    core = dict(sd, **{"in_proj.weight": sd["in_proj.weight"][32:], "out_proj.weight": sd["out_proj.weight"][:, 16:]})
    y_core = mamba_refs.mamba2_forward(core, u, d_state=8, d_conv=4, headdim=8, ngroups=1, D_has_hdim=False,
                                       rmsnorm=True, norm_before_gate=False, chunk_size=8)
    expected = y_core + (torch.nn.functional.silu(z0) * x0) @ sd["out_proj.weight"][:, :16].t()
    torch.testing.assert_close(layer(u), expected, rtol=1e-4, atol=1e-5)


def test_mamba1_loads_a_mamba_ssm_state_dict_and_matches_its_forward(mamba_refs):
    gen = torch.Generator().manual_seed(2)
    d, n, k, rank, di = 12, 4, 4, 3, 24
    r = lambda *s: torch.randn(*s, generator=gen) * 0.3  # noqa: E731
    sd = {"in_proj.weight": r(2 * di, d), "conv1d.weight": r(di, 1, k), "conv1d.bias": r(di),
          "x_proj.weight": r(rank + 2 * n, di), "dt_proj.weight": r(di, rank), "dt_proj.bias": r(di) - 2,
          "A_log": torch.log(torch.arange(1, n + 1.0)).repeat(di, 1), "D": r(di) + 1, "out_proj.weight": r(d, di)}
    layer = Mamba1Layer(d, n, k, 2, rank)
    layer.load_state_dict(sd, strict=True)
    u = torch.randn(2, 23, d, generator=gen)
    torch.testing.assert_close(layer(u), mamba_refs.mamba1_forward(sd, u, d_state=n, d_conv=k, dt_rank=rank),
                               rtol=1e-4, atol=1e-5)
    with pytest.raises(RuntimeError, match="norm.weight"):  # MedSora's normalised variant is a different module
        Mamba1Layer(d, n, k, 2, rank, rmsnorm=True).load_state_dict(sd, strict=True)


LAYERS = {
    "mamba2": lambda: Mamba2Layer(16, 8, 4, expand=2, headdim=4, ngroups=2, chunk_size=8, layer_idx=0),
    "mamba2_no_rmsnorm_hdim": lambda: Mamba2Layer(16, 8, 3, expand=2, headdim=8, rmsnorm=False, D_has_hdim=True,
                                                  dt_limit=(0.01, 0.05), chunk_size=8, layer_idx=0),
    "mamba1": lambda: Mamba1Layer(16, 4, 4, 2, layer_idx=0),
    "mamba1_rmsnorm": lambda: Mamba1Layer(16, 4, 4, 2, layer_idx=0, rmsnorm=True),
}


@pytest.mark.parametrize("kind", LAYERS)
def test_step_over_a_sequence_equals_the_parallel_scan(kind):
    torch.manual_seed(0)
    layer = LAYERS[kind]()
    u = torch.randn(2, 19, 16)
    with torch.no_grad():
        whole = layer(u)
        conv_state, ssm_state = layer.allocate_inference_cache(2, 19)
        steps = [layer.step(u[:, t:t + 1], conv_state, ssm_state)[0] for t in range(19)]
    torch.testing.assert_close(torch.cat(steps, 1), whole, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", LAYERS)
def test_inference_cache_carries_a_sequence_across_windows(kind):
    """Prefill 7 steps, continue with a 9-step window (parallel, from the cached states), then 3 single steps:
    the same as the whole sequence at once."""
    torch.manual_seed(0)
    layer = LAYERS[kind]()
    u = torch.randn(2, 19, 16)
    params = InferenceParams(max_seqlen=19, max_batch_size=2)
    with torch.no_grad():
        whole = layer(u)
        outs = []
        for a, e in ((0, 7), (7, 16), (16, 17), (17, 18), (18, 19)):
            outs.append(layer(u[:, a:e], inference_params=params))
            params.seqlen_offset += e - a
        again = layer(u[:, :7], inference_params=InferenceParams(19, 2, key_value_memory_dict=params.key_value_memory_dict))
    torch.testing.assert_close(torch.cat(outs, 1), whole, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(again, whole[:, :7], rtol=1e-5, atol=1e-6)  # offset 0 starts afresh


def test_packed_sequences_in_a_layer_equal_each_alone():
    """seq_idx restarts both the conv taps and the scan state at every boundary."""
    torch.manual_seed(0)
    layer = Mamba2Layer(16, 8, 4, expand=2, headdim=8, chunk_size=8)
    lengths = (5, 12, 2, 9)
    u = torch.randn(1, sum(lengths), 16)
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()])
    packed = layer(u, seq_idx=seq_idx_from_cu_seqlens(cu, sum(lengths)), cu_seqlens=cu)
    for a, e in zip(cu[:-1].tolist(), cu[1:].tolist()):
        torch.testing.assert_close(packed[:, a:e], layer(u[:, a:e]), rtol=1e-4, atol=1e-5)


def test_unsupported_arguments_fail_by_name():
    with pytest.raises(ValueError, match="process_group"):
        Mamba2Layer(16, process_group=object())
    with pytest.raises(ValueError, match="dt_init"):
        Mamba1Layer(16, dt_init="orthogonal")
    with pytest.raises(TypeError, match="positional arguments"):  # scan_impl is keyword-only
        Mamba2Layer(16, 8, 4, None, 2, 8, None, 1, (1, 16), False, True, False, 0.001, 0.1, 1e-4, (0, 1), False,
                    True, 64, True, None, None, True, None, None, "torch")  # keyword-only: never by position
    with pytest.raises(ValueError, match="layer_idx"):
        Mamba2Layer(16, 8, headdim=8)(torch.randn(1, 3, 16), inference_params=InferenceParams(3, 1))
    with pytest.raises(ValueError, match="one step"):
        layer = Mamba2Layer(16, 8, headdim=8)
        layer.step(torch.randn(1, 2, 16), *layer.allocate_inference_cache(1, 2))
