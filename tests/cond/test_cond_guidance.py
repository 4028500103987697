"""Classifier-free guidance with encoded conditions on the real backbone."""
from __future__ import annotations

import pytest
import torch

from medsora.backbone import MedSoraDiT
from medsora.cond import ConditionEncoder, T5TextEncoder
from medsora.diffusion import guided_prediction

HIDDEN, C = 32, 4


@pytest.fixture
def model_and_encoder(tiny_t5):
    model = MedSoraDiT(C, blocks=["local_attn", "cross_attn", "temporal_mamba"], depth=1, hidden=HIDDEN, heads=4,
                       d_state=8, headdim=8, window=4, scan_impl="torch").eval()
    # adaLN-Zero makes a fresh model ignore its condition; give the zero-initialised tensors values
    with torch.no_grad():
        for p in model.parameters():
            if (p == 0).all():
                p.normal_(std=0.1)
    enc = ConditionEncoder(HIDDEN, modalities=["endoscopy", "mri"], text_encoder=T5TextEncoder(str(tiny_t5)),
                           null_tokens=2).eval()
    return model, enc


def test_guidance_scale_one_is_the_conditional_prediction(model_and_encoder):
    model, enc = model_and_encoder
    x, t = torch.randn(2, C, 2, 8, 8), torch.tensor([10, 700])
    cond, uncond = enc.guidance_pair(["a polyp near the center", "heart"], ["endoscopy", "mri"])
    with torch.no_grad():
        guided = guided_prediction(model, x, t, C, cond.model_kwargs(), uncond.model_kwargs(), scale=1.0)
        plain = model(x, t, **enc(["a polyp near the center", "heart"], ["endoscopy", "mri"]).model_kwargs())
    assert torch.equal(guided, plain)


@pytest.mark.parametrize("negative", [None, "blurry camera"])
def test_guided_prediction_matches_separate_branches(model_and_encoder, negative):
    """The padded, batched branches give uncond + s·(cond − uncond) of the unpadded calls."""
    model, enc = model_and_encoder
    x, t = torch.randn(2, C, 2, 8, 8), torch.tensor([500, 500])
    captions, modalities = ["a polyp near the center of the video", ""], ["endoscopy", "mri"]
    cond, uncond = enc.guidance_pair(captions, modalities, negative_prompt=negative)
    assert cond.tokens.shape == uncond.tokens.shape
    with torch.no_grad():
        guided = guided_prediction(model, x, t, C, cond.model_kwargs(), uncond.model_kwargs(), scale=4.0)
        out_c = model(x, t, **enc(captions, modalities).model_kwargs())
        branch = enc.negative(negative, 2) if negative else enc.null(2)
        out_u = model(x, t, **branch.model_kwargs())
    assert not torch.allclose(out_c, out_u, atol=1e-3)  # the condition matters
    torch.testing.assert_close(guided, out_u + 4.0 * (out_c - out_u), atol=1e-4, rtol=1e-4)
