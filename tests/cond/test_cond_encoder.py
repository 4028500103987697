"""ConditionEncoder: shapes, the null condition, dropout, templates, negative prompts, factory."""
from __future__ import annotations

import pytest
import torch

from medsora.cond import (Condition, ConditionEncoder, ModalityEmbedding, T5TextEncoder, TextFeatures,
                          build_condition_encoder)
from medsora.config import compose

MODALITIES = ["endoscopy", "microscopy", "mri", "ultrasound"]


@pytest.fixture
def encoder(tiny_t5):
    return ConditionEncoder(24, modalities=MODALITIES, text_encoder=T5TextEncoder(str(tiny_t5)), null_tokens=3).eval()


def test_shapes_of_pooled_tokens_and_mask(encoder):
    cond = encoder(["a polyp near the center", "cells"], ["endoscopy", "microscopy"])
    assert cond.pooled.shape == (2, 24)
    assert cond.tokens.shape[0] == 2 and cond.tokens.shape[2] == 24 and cond.mask.shape == cond.tokens.shape[:2]
    assert cond.mask.dtype == torch.bool and cond.mask[0].all() and not cond.mask[1].all()
    kwargs = cond.model_kwargs()
    assert kwargs["cond"] is cond.pooled and kwargs["context"] is cond.tokens and kwargs["context_mask"] is cond.mask


def test_modality_only_encoder_has_no_tokens():
    enc = ConditionEncoder(8, modalities=MODALITIES).eval()
    cond = enc(["ignored caption", "x"], ["mri", "ultrasound"])
    assert cond.pooled.shape == (2, 8) and cond.tokens is None and cond.mask is None
    assert not torch.allclose(cond.pooled[0], cond.pooled[1])
    with pytest.raises(ValueError, match="precomputed text features need text conditioning"):
        enc(modalities=["mri"], text=TextFeatures.pack([torch.randn(3, 8)]))


def test_null_condition_ignores_inputs_and_equals_dropped_samples(encoder):
    null = encoder.null(2)
    assert null.mask.sum(1).tolist() == [3, 3]  # the learned null sequence
    dropped = encoder(["a polyp", "cells dividing"], ["endoscopy", "mri"], drop=torch.tensor([True, False]))
    torch.testing.assert_close(dropped.pooled[0], null.pooled[0])
    torch.testing.assert_close(dropped.tokens[0, dropped.mask[0]], null.tokens[0, null.mask[0]])
    assert not torch.allclose(dropped.pooled[1], null.pooled[1])
    # absent modality and caption are the null condition too
    absent = encoder(modalities=[None, None])
    torch.testing.assert_close(absent.pooled, null.pooled)


def test_null_rows_stay_in_the_graph_when_nothing_is_dropped(encoder):
    """DDP needs a gradient for every parameter in every step, even without dropped samples."""
    cond = encoder(["a polyp"], ["endoscopy"], drop=torch.tensor([False]))
    (cond.pooled.sum() + cond.tokens[cond.mask].sum()).backward()
    assert encoder.null_text.grad is not None and encoder.null_text.grad.abs().sum() == 0


def test_dropout_rate_in_training_and_none_in_eval():
    enc = ConditionEncoder(8, modalities=MODALITIES, dropout=0.1).train()
    n = 20000
    names = ["mri"] * n
    cond = enc(modalities=names)
    null = enc.null(1).pooled
    rate = (cond.pooled == null).all(1).float().mean().item()
    assert abs(rate - 0.1) < 0.01  # binomial std is 0.002
    enc.eval()
    assert not (enc(modalities=names[:500]).pooled == null).all(1).any()
    enc.train()
    assert not (ConditionEncoder(8, modalities=MODALITIES, dropout=0.0).train()(modalities=names[:500]).pooled
                == null).all(1).any()


def test_empty_caption_equals_the_template_caption(encoder):
    a = encoder(["", "   "], ["endoscopy", "mri"])
    b = encoder(["This is a endoscopy video.", "This is a mri video."], ["endoscopy", "mri"])
    torch.testing.assert_close(a.pooled, b.pooled)
    torch.testing.assert_close(a.tokens, b.tokens)


def test_template_mode_conditions_only_on_the_modality(tiny_t5):
    enc = ConditionEncoder(24, modalities=MODALITIES, text_encoder=T5TextEncoder(str(tiny_t5)),
                           use_template=True).eval()
    a = enc(["a polyp near the center", "cells"], ["endoscopy", "microscopy"])
    b = enc(["something else entirely", ""], ["endoscopy", "microscopy"])
    torch.testing.assert_close(a.pooled, b.pooled)
    torch.testing.assert_close(a.tokens, b.tokens)
    assert not torch.allclose(a.pooled[0], a.pooled[1])
    with pytest.raises(ValueError, match="precomputed text features need .* without cond.use_template"):
        enc(modalities=["mri"], text=enc.text_encoder.encode(["mri"]))


def test_negative_prompt(encoder):
    null = encoder.null(2)
    empty = encoder.negative("", 2)
    torch.testing.assert_close(empty.pooled, null.pooled)
    torch.testing.assert_close(empty.tokens, null.tokens)
    neg = encoder.negative("blurry", 2)
    assert not torch.allclose(neg.pooled, null.pooled)
    # the negative prompt is encoded as given, with the null modality
    text_only = ConditionEncoder(24, text_encoder=encoder.text_encoder, null_tokens=3).eval()
    text_only.load_state_dict({k: v for k, v in encoder.state_dict().items() if not k.startswith("modality")})
    neg_direct = text_only(["blurry", "blurry"])
    torch.testing.assert_close(neg.pooled - null.pooled, neg_direct.pooled - text_only.null(2).pooled)
    with pytest.raises(ValueError, match="negative prompt needs text conditioning"):
        ConditionEncoder(8, modalities=MODALITIES).negative("blurry", 1)


def test_cat_pads_tokens_for_the_two_guidance_branches(encoder):
    cond = encoder(["a polyp near the center of the heart"], ["endoscopy"])
    null = encoder.null(1)
    both = Condition.cat([cond, null])
    assert both.tokens.shape == (2, max(cond.tokens.shape[1], null.tokens.shape[1]), 24)
    assert both.mask[1].sum() == 3 and torch.equal(both.tokens[1, 3:], torch.zeros_like(both.tokens[1, 3:]))
    torch.testing.assert_close(both.pooled, torch.cat([cond.pooled, null.pooled]))
    with pytest.raises(ValueError, match="cannot mix"):
        Condition.cat([cond, Condition(null.pooled)])


def test_unknown_modality_is_reported():
    emb = ModalityEmbedding(["mri", "endoscopy"], 4)
    assert emb.indices(["MRI ", "endoscopy", None], 3).tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match=r"unknown modality 'x-ray'; this model knows \['mri', 'endoscopy'\]"):
        emb.indices(["x-ray"], 1)


def test_factory(tiny_t5):
    base = ["data.root=demo"]
    assert build_condition_encoder(compose(overrides=base + ["cond=none"]).cond, 16) is None
    cfg = compose(overrides=base + ["cond=modality"]).cond
    enc = build_condition_encoder(cfg, 16, modalities=["ultrasound", "Endoscopy", "mri", "endoscopy"])
    assert enc.modalities == ("endoscopy", "mri", "ultrasound") and enc.text_encoder is None
    assert enc.dropout == 0.1
    with pytest.raises(ValueError, match=r"no modality classes: set cond.modalities"):
        build_condition_encoder(cfg, 16)
    cfg = compose(overrides=base + ["cond=text", f"cond.text_encoder={tiny_t5}", "cond.max_tokens=20"]).cond
    enc = build_condition_encoder(cfg, 16)
    assert enc.modality is None and enc.text_encoder.max_tokens == 20 and enc.null_text.shape == (8, 32)
    with pytest.raises(ValueError, match="cond.text is true but cond.text_encoder is not set"):
        build_condition_encoder(compose(overrides=base + ["cond=text"]).cond, 16)
    with pytest.raises(ValueError, match=r"cond.dropout = 1.0: must be in \[0, 1\)"):
        build_condition_encoder(compose(overrides=base + ["cond=modality", "cond.dropout=1.0"]).cond, 16, ["mri"])
