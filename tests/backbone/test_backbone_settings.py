"""The backbone is built from the whole ``model:`` section: every setting reaches the code that uses it."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from omegaconf import OmegaConf

from medsora.backbone import BLOCK_TYPES, MedSoraDiT, ModelConfig

# Settings that do not change what is built: ``preset`` only names the YAML file a config came from.
NOT_BUILT = {"preset"}
SMALL = dict(depth=2, hidden=32, heads=2, d_state=8, headdim=16, window=4, scan_impl="torch")


def test_every_model_setting_is_read_by_the_model(recording_config):
    # every sub-block kind, the MLP sub-block and the projector: each reads its own settings from the config
    cfg, reads = recording_config(ModelConfig(blocks=list(BLOCK_TYPES), mlp_ratio=2.0, **SMALL))
    model = MedSoraDiT(4, cfg, align_dim=8, context_dim=16)
    assert model.config is cfg
    # the reference forms read their own settings (window_reach; the slice geometry)
    ref_cfg, ref_reads = recording_config(ModelConfig(blocks=list(BLOCK_TYPES), local_attn="raster1d",
                                                      scan_geometry="reference", **SMALL))
    MedSoraDiT(4, ref_cfg)
    reads = reads | ref_reads
    unread = {f.name for f in dataclasses.fields(ModelConfig)} - NOT_BUILT - reads
    assert not unread, f"ModelConfig fields no code reads when building the model: {sorted(unread)}"


def test_mamba1_reads_its_settings(recording_config):
    cfg, reads = recording_config(ModelConfig(blocks=["spatial_mamba", "temporal_mamba"], mamba="mamba1", **SMALL))
    MedSoraDiT(4, cfg)
    assert {"mamba", "d_state", "expand", "scan_impl", "scan_order", "cycle_orders", "bidirectional",
            "joint_frames", "temporal_bidirectional"} <= reads
    assert "headdim" not in reads  # a Mamba2-only setting


@pytest.mark.parametrize("source", ["dataclass", "section", "keywords"])
def test_config_section_and_keywords_build_the_same_model(source):
    settings = dict(SMALL, blocks=["local_attn", "spatial_mamba"], mlp_ratio=1.0, learn_sigma=True)
    torch.manual_seed(3)
    reference = MedSoraDiT(4, ModelConfig(**settings))
    torch.manual_seed(3)
    if source == "dataclass":
        model = MedSoraDiT(4, ModelConfig(**settings))
    elif source == "section":  # the ``model`` section of a composed run config
        model = MedSoraDiT.from_config(OmegaConf.structured(ModelConfig(**settings)), in_channels=4)
    else:
        model = MedSoraDiT(in_channels=4, **settings)
    assert model.config == reference.config
    ref_state = reference.state_dict()
    assert model.state_dict().keys() == ref_state.keys()
    for key, value in model.state_dict().items():
        assert torch.equal(value, ref_state[key]), key


def test_keywords_override_the_section():
    model = MedSoraDiT(4, ModelConfig(**SMALL), depth=1)
    assert len(model.layers) == 1 and model.config.hidden == 32


def test_unknown_setting_is_refused_naming_it():
    with pytest.raises(TypeError, match="dpth"):
        MedSoraDiT(4, dpth=3)


def test_reference_forms_are_built_from_their_settings():
    from medsora.backbone.raster_attention import RasterWindowAttention
    from medsora.backbone.slice_mamba import SliceSpiralMamba

    model = MedSoraDiT(4, ModelConfig(**SMALL), local_attn="raster1d", window_reach=2, scan_geometry="reference")
    attn, spatial = model.layers[0].blocks[0], model.layers[0].blocks[1]
    assert isinstance(attn, RasterWindowAttention) and (attn.window, attn.reach) == (4, 2)
    assert isinstance(spatial, SliceSpiralMamba)
    out = model(torch.randn(1, 4, 3, 8, 8), torch.tensor([5]))
    assert out.shape == (1, 4, 3, 8, 8)
