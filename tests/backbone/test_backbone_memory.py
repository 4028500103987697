"""Activation memory: what the MedSora sub-blocks keep for backward, counted with saved_tensors_hooks, against
joint attention at equal width and depth (the issue's bound: ≤ 2× at 9×24×24 tokens), and recomputation
that changes nothing but memory."""
from __future__ import annotations

import pytest
import torch

from medsora.backbone import MedSoraDiT
from medsora.backbone.cost import saved_activation_bytes
from medsora.ssm import Mamba2Layer

PATTERNS = {"medsora": dict(blocks=["local_attn", "spatial_mamba", "temporal_mamba"], mlp_ratio=0.0),
            "full_attn": dict(blocks=["full_attn"], mlp_ratio=4.0)}


def saved_bytes(model, x, t) -> int:
    """Bytes of the distinct storages autograd saves for backward in one forward, parameters excluded."""
    return saved_activation_bytes(model, x, t)


def build(pattern, recompute=True, **kw):
    torch.manual_seed(0)
    model = MedSoraDiT(in_channels=16, depth=1, hidden=256, heads=4, patch=2, d_state=128, headdim=64, expand=2,
                       window=8, learn_sigma=True, scan_impl="torch", **PATTERNS[pattern], **kw)
    for module in model.modules():
        if isinstance(module, Mamba2Layer):
            module.recompute = recompute
    return model


def test_saved_activations_at_9x24x24_tokens_against_full_attention():
    x, t = torch.randn(1, 16, 9, 48, 48), torch.tensor([500])
    full = saved_bytes(build("full_attn"), x, t)
    before = saved_bytes(build("medsora", recompute=False), x, t)
    default = saved_bytes(build("medsora"), x, t)
    spatial = saved_bytes(build("medsora", checkpoint_blocks=["spatial_mamba"]), x, t)
    # Recomputing the conv, SiLU, skip and gated norm of every Mamba layer (elementwise work) ...
    assert default < 0.8 * before
    # ... and recomputing the bidirectional spatial scan (model.checkpoint_blocks=[spatial_mamba]) meets the bound.
    assert spatial <= 2.0 * full, (spatial / full, default / full)


def test_recomputation_gives_the_same_gradients(small_model, waker):
    torch.manual_seed(0)
    plain = waker(small_model(mlp_ratio=2.0))
    for module in plain.modules():
        if isinstance(module, Mamba2Layer):
            module.recompute = False
    torch.manual_seed(0)
    recomputed = waker(small_model(mlp_ratio=2.0, checkpoint_blocks=["spatial_mamba", "mlp"]))
    x, t = torch.randn(2, 4, 3, 8, 8), torch.tensor([10, 700])
    grads = []
    for model in (plain, recomputed):
        model(x, t).square().sum().backward()
        grads.append([p.grad for p in model.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert [b.checkpointed for b in recomputed.layers[0].blocks] == [False, True, False, True]


def test_checkpoint_blocks_must_name_sub_blocks_of_the_model(small_model):
    with pytest.raises(ValueError, match="model.checkpoint_blocks"):
        small_model(checkpoint_blocks=["cross_attn"])
