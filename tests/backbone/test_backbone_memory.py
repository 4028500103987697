"""Activation memory: what the MedSora sub-blocks keep for backward, counted with saved_tensors_hooks, against
joint attention at equal width and depth (the issue's bound: ≤ 2× at 9×24×24 tokens, depth 4), and recomputation
that changes nothing but memory (gradients bit-equal to the path that saves everything), switched by
model.mamba_recompute."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medsora.backbone import MedSoraDiT
from medsora.backbone.cost import saved_activation_breakdown, saved_activation_bytes
from medsora.config import ConfigError, compose
from medsora.ssm import Mamba2Layer
from medsora.ssm.conv import CausalDepthwiseConv1d

PATTERNS = {"medsora": dict(blocks=["local_attn", "spatial_mamba", "temporal_mamba"], mlp_ratio=0.0),
            "full_attn": dict(blocks=["full_attn"], mlp_ratio=4.0)}


def saved_bytes(model, x, t) -> int:
    """Bytes of the distinct storages autograd saves for backward in one forward, parameters excluded."""
    return saved_activation_bytes(model, x, t)


def build(pattern, depth=1, **kw):
    torch.manual_seed(0)
    return MedSoraDiT(in_channels=16, depth=depth, hidden=256, heads=4, patch=2, d_state=128, headdim=64, expand=2,
                      window=8, learn_sigma=True, scan_impl="torch", **PATTERNS[pattern], **kw)


def test_saved_activations_at_9x24x24_tokens_against_full_attention():
    """The default MedSora pattern (depth 4, as benchmarks/backbone.py) keeps at most twice full attention's bytes."""
    x, t = torch.randn(1, 16, 9, 48, 48), torch.tensor([500])
    full = saved_bytes(build("full_attn", depth=4), x, t)
    default = saved_bytes(build("medsora", depth=4), x, t)
    assert default <= 2.0 * full, default / full


def test_recomputation_keeps_a_fraction_of_what_the_plain_layers_save():
    x, t = torch.randn(1, 16, 9, 32, 32), torch.tensor([500])
    plain = saved_bytes(build("medsora", mamba_recompute="off"), x, t)
    default = saved_bytes(build("medsora"), x, t)
    spatial = saved_bytes(build("medsora", checkpoint_blocks=["spatial_mamba"]), x, t)
    # Each Mamba layer keeps its in_proj output (and a spatial layer its scan output) instead of its conv, scan
    # and norm tensors ...
    assert default < 0.6 * plain, default / plain
    # ... and recomputing whole spatial sub-blocks (model.checkpoint_blocks=[spatial_mamba]) keeps less again.
    assert spatial < 0.75 * default, spatial / default


@pytest.mark.parametrize("length, keeps_scan_output", [(40, True), (5, False), (44, False)])
def test_a_recomputing_mamba2_layer_keeps_only_its_input_and_in_proj_output(length, keeps_scan_output):
    """Input and in_proj output; plus the scan's output (B×L×d_ssm) where the CPU scan recomputes only its chunk
    states from it: a sequence longer than a chunk and a whole number of chunks (40 = 5 chunks of 8), not a
    one-chunk sequence (5) nor a padded one (44)."""
    torch.manual_seed(0)
    layer = Mamba2Layer(32, 16, 4, expand=2, headdim=8, chunk_size=8)
    u = torch.randn(2, length, 32, requires_grad=True)
    rows = saved_activation_breakdown(layer, u)
    width = layer.in_proj.out_features
    expected = [(2 * length, 32), (2, length, width)] + ([(2, length, layer.d_ssm)] if keeps_scan_output else [])
    assert sorted(r["shape"] for r in rows) == sorted(expected), rows
    layer.recompute = False
    assert sum(r["bytes"] for r in saved_activation_breakdown(layer, u)) > 2 * sum(r["bytes"] for r in rows)


@pytest.mark.parametrize("length, reverse", [(37, False), (40, False), (40, True)], ids=["padded", "kept", "reverse"])
@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("opts", [dict(), dict(ngroups=2, D_has_hdim=True, dt_limit=(0.01, 0.5)),
                                  dict(rmsnorm=False, d_ssm=32)], ids=["default", "groups-hdimD-limit", "gate-mlp"])
def test_recomputed_mamba2_layer_gives_bit_equal_outputs_and_gradients(opts, packed, length, reverse, monkeypatch):
    """Recomputation in backward replays the very ops of the plain path: outputs and every gradient are equal,
    not merely close (packed sequences, groups, per-channel D, dt limits, the silu gate and MLP channels), also
    where the scan's output is kept and its recomputation computes only the chunk states (40 = 5 chunks of 8,
    rmsnorm, not packed), forwards and reversed."""
    import medsora.ssm.chunked_ssd as ssd_module

    given = []
    real_apply = ssd_module.SSDFactoredCore.apply
    monkeypatch.setattr(ssd_module.SSDFactoredCore, "apply",
                        lambda *args: given.append(args[8] is not None) or real_apply(*args))
    torch.manual_seed(0)
    layer = Mamba2Layer(32, 16, 4, expand=2, headdim=8, chunk_size=8, **opts)
    x = torch.randn(2, length, 32, requires_grad=True)
    if packed and reverse:
        pytest.skip("reverse=True takes no seq_idx (refused, see the test below)")
    kw = {"seq_idx": (torch.arange(length) >= 20).int()[None].expand(2, length)} if packed else {}
    if reverse:
        kw["reverse"] = True
    results = []
    for recompute in (False, True):
        layer.recompute = recompute
        y = layer(x, **kw)
        results.append([y, *torch.autograd.grad(y.square().sum(), [x, *layer.parameters()])])
    for plain, recomputed in zip(*results):
        assert torch.equal(plain, recomputed)
    states_only = length == 40 and not packed and opts.get("rmsnorm", True)
    assert any(given) == states_only, given  # the recomputation took the kept output back


def test_reverse_scan_is_the_scan_of_the_flipped_sequence():
    """``layer(u, reverse=True)`` (flip after in_proj, as the bidirectional scans call it) against
    ``layer(u.flip(1)).flip(1)``, outputs and gradients; bad combinations named."""
    torch.manual_seed(0)
    layer = Mamba2Layer(32, 16, 4, expand=2, headdim=8, chunk_size=8).double()
    u = torch.randn(2, 40, 32, dtype=torch.float64, requires_grad=True)
    a, b = layer(u, reverse=True), layer(u.flip(1)).flip(1)
    torch.testing.assert_close(a, b)
    for ga, gb in zip(torch.autograd.grad(a.square().sum(), [u, *layer.parameters()]),
                      torch.autograd.grad(b.square().sum(), [u, *layer.parameters()])):
        torch.testing.assert_close(ga, gb)
    with pytest.raises(ValueError, match="reverse=True takes a plain"):
        layer(u, seq_idx=torch.zeros(2, 40, dtype=torch.int32), reverse=True)


@pytest.mark.parametrize("length", [1, 3, 23])
def test_causal_conv_matches_conv1d_with_gradients(length):
    """The shifted multiply-add conv (its pre-activation recomputed in backward) against F.conv1d, fp64."""
    torch.manual_seed(0)
    conv = CausalDepthwiseConv1d(6, 4).double()
    x = torch.randn(2, 6, length, dtype=torch.float64, requires_grad=True)
    ref = F.silu(F.conv1d(F.pad(x, (3, 0)), conv.weight, conv.bias, groups=6))
    out = conv(x)
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(ref)
    params = [x, conv.weight, conv.bias]
    for a, b in zip(torch.autograd.grad(out, params, g), torch.autograd.grad(ref, params, g)):
        torch.testing.assert_close(a, b)
    assert torch.autograd.gradcheck(lambda *p: conv(p[0]), (x,))


@pytest.mark.parametrize("shape, block", [((5, 23, 6), 2 * 23 * 6), ((2, 23, 6), 5 * 6), ((3, 2, 6), 6)])
def test_causal_conv_blocks_change_no_output_or_input_gradient(monkeypatch, shape, block):
    """The CPU conv walks cache-sized blocks (whole sequences, or stretches of one sequence with the k-1 steps
    before each stretch read across the block edge): output and all gradients as with one block, as the plain
    whole-tensor ops of CUDA and torch.compile, and as F.conv1d's, fp64; an input of a narrower dtype than the weights keeps its dtype."""
    import medsora.ssm.conv as conv_mod

    torch.manual_seed(0)
    b, length, c = shape
    conv = CausalDepthwiseConv1d(c, 4).double()
    x = torch.randn(b, c, length, dtype=torch.float64, requires_grad=True)
    g = torch.randn(b, c, length, dtype=torch.float64)
    params = [x, conv.weight, conv.bias]
    results = {}
    for name, elems, plain in (("plain ops", block, True), ("one block", 1 << 30, False), ("blocks", block, False)):
        monkeypatch.setattr(conv_mod, "_BLOCK_ELEMS", elems)
        monkeypatch.setattr(conv_mod, "_one_block", lambda t, plain=plain: plain)  # plain: the CUDA/compile path
        out = conv(x)
        results[name] = (out, *torch.autograd.grad(out, params, g))
    assert len(list(conv_mod._blocks(x.transpose(1, 2), conv.weight[:, 0]))) > 1
    blocked = results["blocks"]
    for other in ("plain ops", "one block"):
        for a, r in zip(blocked, results[other]):
            torch.testing.assert_close(a, r)
    ref = F.silu(F.conv1d(F.pad(x, (3, 0)), conv.weight, conv.bias, groups=c))
    torch.testing.assert_close(blocked[0], ref)
    for a, r in zip(blocked[1:], torch.autograd.grad(ref, params, g)):
        torch.testing.assert_close(a, r)
    half = conv.float()(x.detach().to(torch.bfloat16))
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), ref.float(), atol=0.02, rtol=0.02)


def test_recomputation_gives_the_same_gradients(small_model, waker):
    torch.manual_seed(0)
    plain = waker(small_model(mlp_ratio=2.0, mamba_recompute="off"))
    torch.manual_seed(0)
    recomputed = waker(small_model(mlp_ratio=2.0, checkpoint_blocks=["spatial_mamba", "mlp"]))
    x, t = torch.randn(2, 4, 3, 8, 8), torch.tensor([10, 700])
    outs, grads = [], []
    for model in (plain, recomputed):
        out = model(x, t)
        out.square().sum().backward()
        outs.append(out)
        grads.append([p.grad for p in model.parameters()])
    torch.testing.assert_close(*outs, rtol=1e-5, atol=1e-6)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert [b.checkpointed for b in recomputed.layers[0].blocks] == [False, True, False, True]


def test_checkpoint_blocks_must_name_sub_blocks_of_the_model(small_model):
    with pytest.raises(ValueError, match="model.checkpoint_blocks"):
        small_model(checkpoint_blocks=["cross_attn"])


def test_model_mamba_recompute_reaches_every_mamba2_layer(small_model, waker):
    """full (the default): each Mamba-2 layer recomputes, and the model keeps fewer bytes; off: every layer keeps
    its intermediates. Outputs and gradients are the same either way (float tolerance: the backbone's other ops)."""
    x, t = torch.randn(1, 4, 3, 8, 8), torch.tensor([300])
    models, saved = {}, {}
    for mode in ("full", "off"):
        torch.manual_seed(0)
        models[mode] = waker(small_model(mamba_recompute=mode))
        flags = {m.recompute for m in models[mode].modules() if isinstance(m, Mamba2Layer)}
        assert flags == {mode == "full"}, (mode, flags)
        saved[mode] = saved_bytes(models[mode], x, t)
    assert saved["full"] < 0.75 * saved["off"], saved
    outs, grads = [], []
    for model in models.values():
        out = model(x, t)
        outs.append(out)
        grads.append(torch.autograd.grad(out.square().sum(), list(model.parameters())))
    torch.testing.assert_close(*outs, rtol=1e-6, atol=1e-7)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_model_mamba_recompute_from_the_config_and_a_bad_value_named():
    cfg = compose(overrides=["data.root=demo", "model=tiny", "model.mamba_recompute=off"]).model
    layers = [m for m in MedSoraDiT.from_config(cfg, in_channels=4).modules() if isinstance(m, Mamba2Layer)]
    assert layers and not any(m.recompute for m in layers)
    with pytest.raises(ConfigError, match=r"'model.mamba_recompute' = 'partial' is not one of \['full', 'off'\]"):
        compose(overrides=["data.root=demo", "model.mamba_recompute=partial"])
    with pytest.raises(ValueError, match="model.mamba_recompute='partial' must be 'full' or 'off'"):
        MedSoraDiT(4, depth=1, hidden=32, heads=2, d_state=8, headdim=16, mamba_recompute="partial")
