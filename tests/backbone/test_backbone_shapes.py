"""Output shapes on odd, non-square and single-frame grids, for every block kind; input errors."""
from __future__ import annotations

import pytest
import torch

from medsora.backbone.schema import BLOCK_TYPES

ALL_BLOCKS = tuple(BLOCK_TYPES)


@pytest.mark.parametrize("frames,height,width", [(1, 6, 10), (3, 10, 6), (2, 2, 2), (5, 14, 18)])
def test_every_block_kind_keeps_the_latent_shape(small_model, waker, frames, height, width):
    """Token grids 1×3×5 (image mode), 3×5×3, 2×1×1 and 5×7×9 (window 4 needs padding)."""
    model = waker(small_model(blocks=ALL_BLOCKS, depth=1, mlp_ratio=2.0, window_frames=1, context_dim=24,
                              align_dim=12, align_tap="spatial_mamba", projector_hidden=16))
    x = torch.randn(2, 4, frames, height, width)
    context = torch.randn(2, 5, 24)
    mask = torch.tensor([[True, True, False, False, False], [True] * 5])
    out, align = model(x, torch.tensor([3, 999]), context=context, context_mask=mask, return_align=True)
    assert out.shape == x.shape
    assert align.shape == (2, frames, height // 2, width // 2, 12)
    assert torch.isfinite(out).all() and torch.isfinite(align).all()


def test_learned_sigma_doubles_the_channels_and_float_timesteps_work(small_model):
    model = small_model(learn_sigma=True)
    x = torch.randn(1, 4, 2, 6, 4)
    assert model(x, torch.tensor([0.5])).shape == (1, 8, 2, 6, 4)
    assert model(x, torch.tensor(7)).shape == (1, 8, 2, 6, 4)  # a 0-d t is broadcast over the batch


def test_pooled_condition_changes_the_output(small_model, waker):
    model = waker(small_model())
    x, t = torch.randn(2, 4, 2, 4, 4), torch.tensor([10, 20])
    cond = torch.randn(2, 32)
    assert not torch.allclose(model(x, t), model(x, t, cond=cond))


def test_alignment_features_come_from_the_requested_layer(small_model, waker):
    """The projector reads layer `align_depth`: deeper layers do not influence the features."""
    model = waker(small_model(depth=3, align_dim=6, align_depth=1, align_tap="local_attn", projector_hidden=8))
    x, t = torch.randn(1, 4, 2, 4, 4), torch.tensor([5])
    _, before = model(x, t, return_align=True)
    with torch.no_grad():
        for p in model.layers[1:].parameters():
            p.add_(1.0)
    _, after = model(x, t, return_align=True)
    torch.testing.assert_close(before, after)


def test_mamba1_layers_are_an_option(small_model):
    model = small_model(mamba="mamba1")
    x = torch.randn(1, 4, 2, 4, 6)
    assert model(x, torch.tensor([1])).shape == x.shape


@pytest.mark.parametrize(
    "kwargs,call,message",
    [
        ({}, dict(x=torch.randn(1, 4, 2, 5, 4)), "multiples of model.patch"),
        ({}, dict(x=torch.randn(1, 3, 2, 4, 4)), "latent channels"),
        ({}, dict(x=torch.randn(1, 4, 2, 4, 4), t=torch.zeros(3)), "shape \\(B,\\)"),
        ({"blocks": ("cross_attn",)}, dict(x=torch.randn(1, 4, 1, 4, 4)), "context=None"),
        ({}, dict(x=torch.randn(1, 4, 1, 4, 4), context=torch.randn(1, 2, 32)), "no cross_attn"),
        ({}, dict(x=torch.randn(1, 4, 1, 4, 4), return_align=True), "align_dim"),
    ],
)
def test_input_errors_say_what_to_fix(small_model, kwargs, call, message):
    model = small_model(**kwargs)
    call.setdefault("t", torch.zeros(1))
    with pytest.raises(ValueError, match=message):
        model(**call)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(blocks=("local_attn", "bogus")), "model.blocks"),
        (dict(hidden=30), "multiple of 4"),
        (dict(heads=3), "model.heads"),
        (dict(align_dim=4, align_tap="full_attn"), "align.tap"),
        (dict(align_dim=4, align_depth=3), "align.depth"),
        (dict(scan_order="diagonal"), "model.scan_order"),
    ],
)
def test_construction_errors_name_the_config_key(small_model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        small_model(**kwargs)
