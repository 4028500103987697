"""``vae.upsample``: the decoder's spatial upsampling, diffusers' nearest or bilinear."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from diffusers.models.upsampling import CogVideoXUpsample3D

from medsora.vae.causal import TimeUpsample3D
from medsora.vae.model import FreqCompVAE


def _pair(spatial: str):
    torch.manual_seed(0)
    ref = CogVideoXUpsample3D(4, 4, compress_time=False)
    return ref, TimeUpsample3D.from_module(ref, spatial)


def test_nearest_is_diffusers_own_upsampler():
    ref, ours = _pair("nearest")
    x = torch.randn(2, 4, 3, 5, 6)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=0)


def test_bilinear_is_torch_bilinear_per_frame_then_the_same_conv():
    _, ours = _pair("bilinear")
    x = torch.randn(2, 4, 3, 5, 6)
    with torch.no_grad():
        y = ours(x)
        for t in range(3):
            expected = ours.conv(F.interpolate(x[:, :, t], scale_factor=2.0, mode="bilinear", align_corners=False))
            torch.testing.assert_close(y[:, :, t], expected)
    # a horizontal ramp stays a ramp: no two neighbouring columns repeat, unlike nearest's 2×2 blocks
    ramp = torch.arange(6.0).expand(1, 1, 1, 4, 6)
    up = F.interpolate(ramp[:, :, 0], scale_factor=2.0, mode="bilinear", align_corners=False)[0, 0, 0, 1:-1]
    assert (up.diff() > 0).all()


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_decoder_stays_causal_and_sized_with_either_mode(tiny_cfg, mode):
    vae = FreqCompVAE.from_config(tiny_cfg(upsample=mode)).eval()
    z = torch.randn(1, 4, 3, 4, 4)
    z2 = z.clone()
    z2[:, :, 2] += 1.0
    with torch.no_grad():
        y, y2 = vae.decode(z), vae.decode(z2)
    assert y.shape == (1, 3, 9, 32, 32)
    torch.testing.assert_close(y2[:, :, :5], y[:, :, :5], rtol=0, atol=1e-6)  # frames of latents 0 and 1


def test_bad_upsample_mode_names_the_key():
    with pytest.raises(ValueError, match="vae.upsample = 'cubic'"):
        TimeUpsample3D(4, 4, spatial="cubic")
