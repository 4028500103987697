"""Mamba layers: shapes, causality, scan-path equivalence, initialisation, conv and gated norm."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from medsora.ssm import Mamba1Layer, Mamba2Layer
from medsora.ssm.conv import CausalDepthwiseConv1d
from medsora.ssm.norm import RMSNormGated, _GatedRMSNorm, rms_norm_gated_ref

LAYERS = {
    "mamba2": lambda impl="auto": Mamba2Layer(16, d_state=8, headdim=8, expand=2, chunk_size=8, scan_impl=impl),
    "mamba2_groups": lambda impl="auto": Mamba2Layer(16, d_state=8, headdim=4, expand=2, ngroups=2, chunk_size=8,
                                                     scan_impl=impl),
    "mamba1": lambda impl="auto": Mamba1Layer(16, d_state=4, expand=2, scan_impl=impl),
}


@pytest.mark.parametrize("kind", LAYERS)
def test_shape_and_causality(kind):
    layer = LAYERS[kind]()
    x = torch.randn(2, 21, 16)
    y = layer(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    x2 = x.clone()
    x2[:, 13:] += torch.randn(2, 8, 16)
    y2 = layer(x2)
    torch.testing.assert_close(y2[:, :13], y[:, :13], rtol=1e-5, atol=1e-6)  # the past ignores the future
    assert not torch.allclose(y2[:, 13:], y[:, 13:])


@pytest.mark.parametrize("kind", LAYERS)
def test_torch_and_reference_scans_agree_with_gradients(kind):
    torch.manual_seed(0)
    fast = LAYERS[kind]("torch")
    ref = LAYERS[kind]("ref")
    ref.load_state_dict(fast.state_dict())
    x = torch.randn(2, 19, 16, requires_grad=True)
    y_fast, y_ref = fast(x), ref(x)
    torch.testing.assert_close(y_fast, y_ref, rtol=1e-4, atol=1e-5)
    g_fast = torch.autograd.grad(y_fast.square().sum(), [x, *fast.parameters()])
    g_ref = torch.autograd.grad(y_ref.square().sum(), [x, *ref.parameters()])
    for a, b in zip(g_fast, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_mamba2_initialisation_follows_mamba_ssm():
    layer = Mamba2Layer(64, d_state=16, headdim=16, expand=2)
    assert layer.nheads == 8 and layer.in_proj.out_features == 2 * 128 + 2 * 16 + 8
    A = torch.exp(layer.A_log)
    assert ((A >= 1) & (A <= 16)).all()
    dt = F.softplus(layer.dt_bias)
    assert ((dt >= 1e-4 - 1e-7) & (dt <= 0.1 + 1e-6)).all()
    assert torch.equal(layer.D, torch.ones(8))


def test_mamba1_initialisation_follows_mamba_ssm():
    layer = Mamba1Layer(32, d_state=8, expand=2)
    assert layer.dt_rank == math.ceil(32 / 16)
    assert torch.allclose(torch.exp(layer.A_log), torch.arange(1, 9).float().repeat(64, 1))
    dt = F.softplus(layer.dt_proj.bias)
    assert ((dt >= 1e-4 - 1e-7) & (dt <= 0.1 + 1e-6)).all()
    assert layer.dt_proj.weight.abs().max() <= layer.dt_rank ** -0.5


@pytest.mark.parametrize("kind", LAYERS)
def test_a_few_steps_fit_a_tiny_sequence_task(kind):
    """Learn y_t = x_{t-2} (needs memory across steps): the loss must drop clearly."""
    torch.manual_seed(0)
    layer = LAYERS[kind]()
    opt = torch.optim.Adam(layer.parameters(), lr=1e-2)
    x = torch.randn(8, 24, 16)
    target = F.pad(x, (0, 0, 2, 0))[:, :24]
    losses = []
    for _ in range(40):
        loss = F.mse_loss(layer(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]


def test_causal_conv_matches_mamba_ssm_padding_convention():
    conv = CausalDepthwiseConv1d(6, 4)
    x = torch.randn(2, 6, 11)
    padded = F.conv1d(x, conv.weight, conv.bias, padding=3, groups=6)[..., :11]  # mamba_ssm's nn.Conv1d path
    torch.testing.assert_close(conv(x), F.silu(padded))


def test_gated_rmsnorm_formula_and_groups():
    norm = RMSNormGated(8, eps=1e-5, group_size=4)
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 2.0, 8))
    y, z = torch.randn(3, 8), torch.randn(3, 8)
    h = (y * F.silu(z)).view(3, 2, 4)
    expected = (h / torch.sqrt(h.pow(2).mean(-1, keepdim=True) + 1e-5)).view(3, 8) * norm.weight
    torch.testing.assert_close(norm(y, z), expected)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_gated_rmsnorm_backward_matches_the_composite(dtype):
    """The hand-written backward (saves y, z and one rstd per group) against autograd through every op."""
    gen = torch.Generator().manual_seed(0)
    y, z = (torch.randn(2, 5, 12, generator=gen, dtype=torch.float64) * 2 for _ in range(2))
    weight = torch.randn(12, generator=gen, dtype=torch.float64)
    grad = torch.randn(2, 5, 12, generator=gen, dtype=torch.float64).to(dtype)
    results = []
    for fn in (_GatedRMSNorm.apply, rms_norm_gated_ref):
        inputs = [t.to(dtype).requires_grad_() for t in (y, z, weight)]
        out = fn(*inputs, 4, 1e-5)
        results.append((out, *torch.autograd.grad(out, inputs, grad)))
    tol = {torch.float64: 1e-10, torch.float32: 1e-5, torch.bfloat16: 3e-2}[dtype]
    for fast, ref in zip(*results):
        assert fast.dtype == ref.dtype == dtype
        scale = ref.double().abs().max().clamp_min(1.0)
        torch.testing.assert_close(fast.double() / scale, ref.double() / scale, rtol=tol, atol=tol)


def test_gated_rmsnorm_gradcheck_and_weight_gradient():
    y, z = (torch.randn(3, 8, dtype=torch.float64, requires_grad=True) for _ in range(2))
    weight = torch.randn(8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, w: _GatedRMSNorm.apply(a, b, w, 4, 1e-5), (y, z, weight))
    norm = RMSNormGated(8, group_size=4).double()
    norm(y, z).square().sum().backward()
    w = norm.weight.detach().clone().requires_grad_()
    rms_norm_gated_ref(y, z, w, 4, 1e-5).square().sum().backward()
    torch.testing.assert_close(norm.weight.grad, w.grad)


def test_errors_name_the_config_keys():
    with pytest.raises(ValueError, match="model.headdim"):
        Mamba2Layer(20, headdim=16)
    with pytest.raises(ValueError, match="model.scan_impl"):
        Mamba2Layer(16, headdim=8, scan_impl="triton")
    with pytest.raises(ValueError, match="B×L×16"):
        LAYERS["mamba2"]()(torch.randn(2, 16))
