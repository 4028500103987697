"""The condition encoder is built from the whole ``cond:`` section: every setting reaches its code."""
from __future__ import annotations

import dataclasses

import pytest
from omegaconf import OmegaConf

from medsora.cond.encoder import ConditionEncoder, build_condition_encoder
from medsora.cond.schema import CondConfig


def test_every_cond_setting_is_read(recording_config, tiny_t5):
    cfg, reads = recording_config(CondConfig(modality=True, modalities=["mri", "endoscopy"], text=True,
                                             text_encoder=str(tiny_t5), null_tokens=3))
    encoder = build_condition_encoder(cfg, hidden=16)
    assert encoder.config is cfg
    unread = {f.name for f in dataclasses.fields(CondConfig)} - reads
    assert not unread, f"CondConfig fields no code reads when building the encoder: {sorted(unread)}"


@pytest.mark.parametrize("source", ["dataclass", "section", "keywords"])
def test_section_and_keywords_agree(source):
    settings = dict(dropout=0.25, null_tokens=5, template="a {modality} clip", use_template=False)
    if source == "dataclass":
        enc = ConditionEncoder(8, CondConfig(**settings), modalities=["mri"])
    elif source == "section":
        enc = ConditionEncoder(8, OmegaConf.structured(CondConfig(**settings)), modalities=["mri"])
    else:
        enc = ConditionEncoder(8, modalities=["mri"], **settings)
    assert (enc.dropout, enc.template, enc.use_template) == (0.25, "a {modality} clip", False)
    assert enc.config == CondConfig(**settings)


def test_unknown_setting_is_refused_naming_it():
    with pytest.raises(TypeError, match="drop_out"):
        ConditionEncoder(8, modalities=["mri"], drop_out=0.2)
