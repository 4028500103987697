"""Named attributes: declaration and value errors, the null path, per-attribute guidance."""
from __future__ import annotations

import json

import pytest
import torch
from omegaconf import OmegaConf

from medsora.backbone import MedSoraDiT
from medsora.cond import AttributeBatch, AttributeValueError, ConditionEncoder, attribute_specs
from medsora.cond.attribute_spec import check_dataset, parse_assignments
from medsora.cond.schema import CondConfig
from medsora.config import ConfigError, compose
from medsora.diffusion import guided_prediction

HIDDEN, C = 32, 4


def _cond(attributes: dict):
    return OmegaConf.merge(OmegaConf.structured(CondConfig), {"attributes": attributes})


def _specs():
    return attribute_specs(_cond({
        "heart_rate": {"kind": "scalar", "range": [40, 160], "dropout": 0.2},
        "pathology": {"kind": "label", "values": ["none", "polyp", "colitis"], "column": "finding"}}))


def test_declarations_are_checked_when_composing():
    with pytest.raises(ConfigError, match=r"cond.attributes.hr.kind = 'ordinal' is not one of"):
        compose(overrides=["data.root=demo", "cond.attributes.hr.kind=ordinal"])
    with pytest.raises(ConfigError, match=r"cond.attributes.hr.range = \[160.0, 40.0\]"):
        compose(overrides=["data.root=demo", "cond.attributes.hr.range=[160,40]"])
    with pytest.raises(ConfigError, match=r"cond.attributes.p.values = \[\]: a label needs"):
        compose(overrides=["data.root=demo", "cond.attributes.p.kind=label"])
    with pytest.raises(ConfigError, match=r"Key 'bins' not in 'AttributeConfig'"):
        compose(overrides=["data.root=demo", "cond.attributes.hr.bins=3"])


def test_bad_values_name_the_clip_and_the_attribute():
    specs = _specs()
    rows = [("clip a.mp4", {"heart_rate": 72, "finding": "polyp"}), ("clip b.mp4", {"heart_rate": 200})]
    with pytest.raises(AttributeValueError, match=r"clip b.mp4: attribute 'heart_rate' = 200 is not a number in "
                                                  r"\[40, 160\]"):
        check_dataset(specs, rows, "manifest.jsonl")
    rows = [("clip a.mp4", {"heart_rate": 72, "finding": "adenoma"})]
    with pytest.raises(AttributeValueError, match=r"clip a.mp4: attribute 'pathology' = 'adenoma' is not one of "
                                                  r"none, polyp, colitis"):
        check_dataset(specs, rows, "manifest.jsonl")
    with pytest.raises(AttributeValueError, match=r"cond.attributes.pathology: no clip of manifest.jsonl has a "
                                                  r"'finding' column \(columns: heart_rate\)"):
        check_dataset(specs, [("clip a.mp4", {"heart_rate": 72})], "manifest.jsonl")
    missing = check_dataset(specs, [("a", {"heart_rate": 72, "finding": ""}), ("b", json.dumps({"finding": "none"})),
                                    ("c", {"heart_rate": None, "finding": "colitis"})], "m")
    assert missing == {"heart_rate": 2, "pathology": 1}


def test_sampling_arguments_name_the_allowed_attributes_and_values():
    specs = _specs()
    assert parse_assignments(specs, ["heart_rate=60", "pathology=polyp"]) == {"heart_rate": "60", "finding": "polyp"}
    with pytest.raises(AttributeValueError, match=r"no attribute 'ef'; its attributes: heart_rate \(a number in "
                                                  r"\[40, 160\]\), pathology \(one of none, polyp, colitis\)"):
        parse_assignments(specs, ["ef=55"])
    with pytest.raises(AttributeValueError, match=r"--attr pathology: attribute 'pathology' = 'ulcer' is not one of"):
        parse_assignments(specs, ["pathology=ulcer"])
    with pytest.raises(AttributeValueError, match=r"'heart_rate' = 'fast' is not a number"):
        parse_assignments(specs, ["heart_rate=fast"])
    with pytest.raises(AttributeValueError, match="expected NAME=VALUE"):
        parse_assignments(specs, ["heart_rate"])


def test_startup_check_reads_the_manifest_and_names_the_clip(tmp_path):
    from medsora.training.stage import build_datamodule

    (tmp_path / "data").mkdir()
    rows = [{"path": "a.mp4", "modality": "ultrasound", "heart_rate": 70},
            {"path": "b.mp4", "modality": "ultrasound", "heart_rate": 300}]
    (tmp_path / "data" / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    cfg = compose(overrides=[f"data.root={tmp_path / 'data'}", "data.probe_files=0", "data.batch_size=1",
                             "data.val_fraction=0", "cond.attributes.heart_rate.range=[40,160]"])
    with pytest.raises(AttributeValueError, match=r"clip b.mp4: attribute 'heart_rate' = 300"):
        build_datamodule(cfg)


def _encoder():
    enc = ConditionEncoder(HIDDEN, modalities=["endoscopy", "ultrasound"], attributes=_specs()).eval()
    with torch.no_grad():  # a fresh model: make the embeddings clearly distinct
        for p in enc.parameters():
            p.normal_(std=0.5)
    return enc


def test_missing_values_take_the_null_embedding():
    enc = _encoder()
    rows = [{"heart_rate": 60, "finding": "polyp"}, {"finding": "polyp"}, {"heart_rate": "", "finding": "polyp"},
            None]
    batch = AttributeBatch.from_rows(enc.attribute_specs, rows)
    assert batch.missing() == {"heart_rate": 3, "pathology": 1}
    cond = enc(modalities=["ultrasound"] * 4, attributes=batch)
    dropped = enc(modalities=["ultrasound"] * 4, attributes=batch,
                  attribute_drop={"heart_rate": torch.tensor([True, False, False, False])})
    assert not torch.allclose(cond.pooled[0], cond.pooled[1])  # the value matters ...
    torch.testing.assert_close(dropped.pooled[0], cond.pooled[1])  # ... and missing == dropped (the null path)
    torch.testing.assert_close(cond.pooled[1], cond.pooled[2])
    nulls = enc.null(1).pooled[0]
    torch.testing.assert_close(enc(attributes=[None], drop=torch.tensor([True])).pooled[0], nulls)


def test_per_attribute_dropout_rates():
    enc = _encoder().train()
    torch.manual_seed(0)
    drops = enc.attribute_dropout(20000)
    assert abs(drops["heart_rate"].float().mean().item() - 0.2) < 0.01
    assert abs(drops["pathology"].float().mean().item() - 0.1) < 0.01


@pytest.fixture
def model():
    model = MedSoraDiT(C, blocks=["full_attn"], depth=1, hidden=HIDDEN, heads=4, scan_impl="torch").eval()
    with torch.no_grad():  # adaLN-Zero makes a fresh model ignore its condition
        for p in model.parameters():
            if (p == 0).all():
                p.normal_(std=0.1)
    return model


def test_scale_one_is_the_conditional_prediction(model):
    enc = _encoder()
    rows = [{"heart_rate": 60, "finding": "polyp"}, {"heart_rate": 150, "finding": "none"}]
    x, t = torch.randn(2, C, 2, 8, 8), torch.tensor([10, 700])
    with torch.no_grad():
        for guide in (None, ["heart_rate"]):
            cond, uncond = enc.guidance_pair(modalities=["endoscopy", "ultrasound"], attributes=rows, guide=guide)
            guided = guided_prediction(model, x, t, C, cond.model_kwargs(), uncond.model_kwargs(), scale=1.0)
            plain = model(x, t, **enc(modalities=["endoscopy", "ultrasound"], attributes=rows).model_kwargs())
            assert torch.equal(guided, plain)


def test_attribute_guidance_acts_only_through_that_attribute(model):
    enc = _encoder()
    rows = [{"heart_rate": 60, "finding": "polyp"}, {"finding": "polyp"}]  # the second has no heart rate
    cond, uncond = enc.guidance_pair(modalities=["ultrasound"] * 2, attributes=rows, guide=["heart_rate"])
    specs = {s.name: s for s in enc.attribute_specs}
    hr = enc.attributes.embed(specs["heart_rate"], torch.tensor([(60 - 40) / 120]), torch.tensor([True]))[0]
    null = enc.attributes.null["heart_rate"]
    # the branches differ by the heart-rate embedding alone (modality and pathology stay)
    torch.testing.assert_close(cond.pooled[0] - uncond.pooled[0], hr - null)
    torch.testing.assert_close(cond.pooled[1], uncond.pooled[1])
    x, t = torch.randn(2, C, 2, 8, 8), torch.tensor([300, 300])
    with torch.no_grad():
        guided = guided_prediction(model, x, t, C, cond.model_kwargs(), uncond.model_kwargs(), scale=5.0)
        plain = model(x, t, **cond.model_kwargs())
    assert not torch.allclose(guided[0], plain[0], atol=1e-4)  # guidance moves the sample with a heart rate ...
    torch.testing.assert_close(guided[1], plain[1])  # ... and leaves the one without it alone
    with pytest.raises(ValueError, match=r"this model's attributes are \['heart_rate', 'pathology'\]"):
        enc.guidance_pair(modalities=["ultrasound"], attributes=[{}], guide=["ejection_fraction"])


def test_attributes_alone_make_a_condition_encoder():
    from medsora.cond import build_condition_encoder

    cfg = OmegaConf.structured(CondConfig)
    assert build_condition_encoder(cfg, HIDDEN) is None
    enc = build_condition_encoder(_cond({"heart_rate": {"kind": "scalar", "range": [40, 160]}}), HIDDEN)
    assert enc.modality is None and [s.name for s in enc.attribute_specs] == ["heart_rate"]
    assert enc(attributes=[{"heart_rate": 80}]).pooled.shape == (1, HIDDEN)
