"""Every preset builds on the meta device with the parameter count worked out by hand."""
from __future__ import annotations

import pytest
import torch

from medsora.backbone import PRESETS, build_preset

# depth, hidden, heads, d_state, headdim, expand, learn_sigma, projector hidden, per configs/model/*.yaml
EXPECTED = {
    "tiny": (2, 64, 4, 16, 16, 2, False, 128),
    "medsora_s": (6, 512, 8, 128, 64, 2, True, 2048),
    "medsora_b": (12, 512, 8, 128, 64, 2, True, 2048),
    "medsora_l": (24, 512, 8, 128, 64, 2, True, 2048),
    "medsora_xl": (48, 512, 8, 128, 64, 2, True, 2048),
}
IN_CHANNELS, PATCH, ALIGN_DIM = 16, 2, 32


def linear(n_in, n_out, bias=True):
    return n_in * n_out + (n_out if bias else 0)


def mamba2(d, d_state, headdim, expand):
    """mamba_ssm.Mamba2 with ngroups=1, d_conv=4, no in/out bias, gated RMSNorm."""
    inner = expand * d
    heads = inner // headdim
    conv = inner + 2 * d_state
    return (linear(d, 2 * inner + 2 * d_state + heads, bias=False) + conv * 4 + conv + 3 * heads + inner
            + linear(inner, d, bias=False))


def expected_count(depth, d, heads, d_state, headdim, expand, learn_sigma, proj_hidden, align):
    adaln = linear(d, 3 * d)
    local_attn = adaln + linear(d, 3 * d) + linear(d, d)
    spatial = adaln + 2 * mamba2(d, d_state, headdim, expand) + 2 * linear(d, d)  # two directions + gated fusion
    temporal = adaln + mamba2(d, d_state, headdim, expand)  # causal: one direction
    out_channels = 2 * IN_CHANNELS if learn_sigma else IN_CHANNELS
    total = (
        IN_CHANNELS * PATCH * PATCH * d + d  # patch embedding (Conv3d 1×2×2)
        + linear(256, d) + linear(d, d)  # timestep embedder
        + depth * (local_attn + spatial + temporal)
        + linear(d, 2 * d) + linear(d, PATCH * PATCH * out_channels)  # final layer
    )
    if align:
        total += linear(d, proj_hidden) + linear(proj_hidden, proj_hidden) + linear(proj_hidden, ALIGN_DIM)
    return total


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("align", [False, True])
def test_preset_parameter_count(name, align):
    kwargs = dict(align_dim=ALIGN_DIM, align_depth=1) if align else {}
    with torch.device("meta"):
        model = build_preset(name, IN_CHANNELS, **kwargs)
    assert all(p.device.type == "meta" for p in model.parameters())
    assert sum(p.numel() for p in model.parameters()) == expected_count(*EXPECTED[name], align=align)
    assert model.block_types() == ("local_attn", "spatial_mamba", "temporal_mamba")
    assert len(model.layers) == EXPECTED[name][0]


def test_preset_spatial_scans_cycle_through_the_eight_spirals():
    with torch.device("meta"):
        model = build_preset("medsora_b", IN_CHANNELS)
    orders = [block.order for block in model.blocks_of_kind("spatial_mamba")]
    assert len(set(orders[:8])) == 8 and orders[8:] == orders[:4]
    assert all(o.startswith("spiral") for o in orders)


def test_preset_overrides_change_what_is_built():
    with torch.device("meta"):
        model = build_preset("medsora_b", IN_CHANNELS, overrides=["depth=3", "blocks=[full_attn]"])
    assert len(model.layers) == 3 and model.block_types() == ("full_attn",)
    with pytest.raises(ValueError, match="unknown model preset"):
        build_preset("medsora_xxl")


@pytest.mark.parametrize("name", PRESETS)
def test_no_preset_is_global_attention_at_its_intended_resolution(name):
    from medsora.backbone.presets import INTENDED_SIZE, local_attention_keys, preset_config

    keys, tokens = local_attention_keys(preset_config(name), INTENDED_SIZE[name])
    assert keys < tokens, f"{name}: local_attn sees {keys} of {tokens} tokens per frame: global, not local"


def test_reference_raster_windows_are_local_at_128px():
    from medsora.backbone.presets import local_attention_keys, preset_config

    cfg = preset_config("medsora_b", ["local_attn=raster1d", "window=8", "window_reach=1"])
    assert local_attention_keys(cfg, 128) == (24, 64)
    assert local_attention_keys(preset_config("medsora_b", ["window=8"]), 128) == (64, 64)  # the old tile: global
