"""DiT initialisation: the untrained model outputs zeros; builds are reproducible from the seed."""
from __future__ import annotations

import pytest
import torch

from medsora.backbone.schema import BLOCK_TYPES


@pytest.mark.parametrize("learn_sigma", [False, True])
def test_untrained_model_outputs_exact_zeros(small_model, learn_sigma):
    model = small_model(blocks=tuple(BLOCK_TYPES), mlp_ratio=2.0, learn_sigma=learn_sigma)
    x = torch.randn(2, 4, 3, 6, 8)
    out = model(x, torch.tensor([0, 500]), cond=torch.randn(2, 32), context=torch.randn(2, 3, 32))
    assert out.shape[1] == (8 if learn_sigma else 4)
    assert torch.equal(out, torch.zeros_like(out))


def test_zero_initialised_sub_blocks_are_the_identity(small_model):
    """adaLN-Zero: every sub-block starts as the identity, so the token grid passes through unchanged."""
    model = small_model(blocks=tuple(BLOCK_TYPES), mlp_ratio=2.0)
    grid = torch.randn(2, 2, 3, 4, 32)
    c = torch.randn(2, 32)
    context = torch.randn(2, 3, 32)
    for block in model.layers[0].blocks:
        assert torch.equal(block(grid, c, context, None), grid), block.kind


def _build(small_model, seed):
    torch.manual_seed(seed)
    return small_model(blocks=tuple(BLOCK_TYPES), mlp_ratio=2.0, align_dim=6, projector_hidden=8)


def test_same_seed_gives_identical_weights_and_outputs(small_model, waker):
    a, b, other = _build(small_model, 7), _build(small_model, 7), _build(small_model, 8)
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(pa, pb), name
    assert any(not torch.equal(pa, po) for pa, po in zip(a.parameters(), other.parameters()))
    waker(a, seed=3), waker(b, seed=3)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 2, 6, 4, generator=gen)
    context = torch.randn(2, 3, 32, generator=gen)
    t = torch.tensor([10, 900])
    out_a, align_a = a(x, t, context=context, return_align=True)
    out_b, align_b = b(x, t, context=context, return_align=True)
    assert torch.equal(out_a, out_b) and torch.equal(align_a, align_b)
    assert out_a.abs().max() > 0


def test_mamba_layers_keep_their_own_initialisation(small_model):
    """DiT's xavier pass skips the Mamba layers: their dt bias still gives softplus(dt) in [1e-3, 0.1]."""
    model = small_model()
    for layer in model.modules():
        if type(layer).__name__ == "Mamba2Layer":
            dt = torch.nn.functional.softplus(layer.dt_bias)
            assert dt.min() >= 1e-4 and dt.max() <= 0.1 + 1e-6
