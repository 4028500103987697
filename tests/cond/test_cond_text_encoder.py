"""The frozen T5 text encoder: local loading, truncation, masking, freezing, cached features."""
from __future__ import annotations

import copy
import warnings

import pytest
import torch

from medsora.cond import CaptionTruncatedWarning, ConditionEncoder, T5TextEncoder, TextFeatures, masked_mean


def test_loads_tokenizer_and_t5_from_the_local_folder(tiny_t5):
    enc = T5TextEncoder(str(tiny_t5), max_tokens=16)
    assert enc.dim == 32 and not enc.loaded  # weights wait for the first encode
    feats = enc.encode(["This is a mri video.", "polyp"])
    assert enc.loaded and type(enc.model).__name__ == "T5EncoderModel"
    assert feats.hidden.dtype == torch.float32
    assert feats.hidden.shape[::2] == (2, 32) and feats.mask.shape == feats.hidden.shape[:2]
    # the second caption is shorter: its tail is padding, masked and zeroed
    assert feats.mask[0].all() and not feats.mask[1].all()
    assert (feats.hidden[1][~feats.mask[1]] == 0).all()


def test_missing_folder_names_the_key_and_the_path(tmp_path):
    missing = tmp_path / "no-t5-here"
    with pytest.raises(FileNotFoundError,
                       match=r"cond.text_encoder = .*no-t5-here.*config.json.*huggingface-cli download"):
        T5TextEncoder(str(missing))
    with pytest.raises(ValueError, match="cond.text_encoder is not set"):
        T5TextEncoder(None)


def test_overlong_caption_is_truncated_with_a_warning(tiny_t5):
    enc = T5TextEncoder(str(tiny_t5), max_tokens=8)
    long = "a polyp near the center of the video with tissue moving and the camera moving"
    assert enc.count_tokens([long])[0] > 8
    with pytest.warns(CaptionTruncatedWarning, match=r"1 of 2 captions exceed cond.max_tokens=8"):
        feats = enc.encode([long, "mri"])
    assert feats.hidden.shape[1] == 8 and feats.mask[0].all()
    # truncation keeps EOS last, exactly as the tokenizer's own truncation does
    ids = enc.tokenizer([long], truncation=True, max_length=8)["input_ids"][0]
    assert len(ids) == 8 and ids[-1] == enc.tokenizer.eos_token_id
    with warnings.catch_warnings():
        warnings.simplefilter("error", CaptionTruncatedWarning)
        enc.encode(["This is a mri video."])


def test_padding_does_not_change_features_or_pooled_vector(tiny_t5):
    enc = T5TextEncoder(str(tiny_t5))
    alone = enc.encode(["mri video"])
    batched = enc.encode(["mri video", "a polyp near the center of the heart with cells and tissue"])
    n = int(alone.mask[0].sum())
    assert batched.mask[0].sum() == n and batched.hidden.shape[1] > n
    torch.testing.assert_close(batched.hidden[0, :n], alone.hidden[0, :n], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(masked_mean(batched.hidden[:1], batched.mask[:1]), masked_mean(alone.hidden, alone.mask),
                               atol=1e-5, rtol=1e-5)
    # garbage at masked positions never reaches the pooled vector
    noisy = batched.hidden.clone()
    noisy[~batched.mask] = 1e3
    torch.testing.assert_close(masked_mean(noisy, batched.mask), masked_mean(batched.hidden, batched.mask))


def test_absent_text_gives_an_empty_mask_row(tiny_t5):
    feats = T5TextEncoder(str(tiny_t5)).encode(["mri", None])
    assert feats.mask[0].any() and not feats.mask[1].any() and (feats.hidden[1] == 0).all()


def test_t5_is_frozen_shared_and_outside_the_state_dict(tiny_t5):
    text = T5TextEncoder(str(tiny_t5))
    enc = ConditionEncoder(16, text_encoder=text, dropout=0.0)
    cond = enc(["a polyp near the center"])
    (cond.pooled.sum() + cond.tokens.sum()).backward()
    t5 = text.model
    assert not t5.training and all(not p.requires_grad and p.grad is None for p in t5.parameters())
    assert enc.token_proj.linear_1.weight.grad is not None
    t5_ids = {id(p) for p in t5.parameters()}
    assert not t5_ids & {id(p) for p in enc.parameters()}
    assert not any(k.startswith(("text_encoder", "encoder.", "shared")) for k in enc.state_dict())
    # an EMA copy shares the frozen encoder instead of duplicating it
    assert copy.deepcopy(enc).text_encoder is text


def test_text_dtype_sets_the_t5_weights_dtype(tiny_t5):
    enc = T5TextEncoder(str(tiny_t5), dtype=torch.bfloat16)
    feats = enc.encode(["mri"])
    assert next(enc.model.parameters()).dtype == torch.bfloat16 and feats.hidden.dtype == torch.float32


def test_cached_features_round_trip_equals_online_encoding(tiny_t5):
    text = T5TextEncoder(str(tiny_t5))
    enc = ConditionEncoder(16, modalities=["endoscopy", "mri"], text_encoder=text).eval()
    captions, modalities = ["a polyp near the center", "", "heart"], ["endoscopy", "mri", None]
    online = enc(captions, modalities)
    # what the cache writer stores (fp32 here, so the comparison is exact) and the collate rebuilds
    texts = ["a polyp near the center", "This is a mri video.", "heart"]
    items = text.encode(texts).unpack(torch.float32)
    assert [h.shape[0] for h in items] == text.count_tokens(texts)
    cached = enc(modalities=modalities, text=TextFeatures.pack(items))
    torch.testing.assert_close(cached.pooled, online.pooled)
    torch.testing.assert_close(cached.tokens, online.tokens)
    assert torch.equal(cached.mask, online.mask)


def test_precomputed_features_do_not_load_t5(tiny_t5):
    text = T5TextEncoder(str(tiny_t5))
    enc = ConditionEncoder(16, text_encoder=text)
    items = [torch.randn(5, text.dim), torch.randn(3, text.dim)]
    cond = enc(text=TextFeatures.pack(items))
    null = enc.null(2)  # the null branch needs no T5 either
    assert cond.tokens.shape == (2, 8, 16) and null.tokens.shape == (2, 8, 16) and not text.loaded
    with pytest.raises(ValueError, match="text features: hidden .* must be B×S×32"):
        enc(text=TextFeatures.pack([torch.randn(4, 7)]))
