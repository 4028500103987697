"""The non-parametric colour shortcuts (``vae.shortcut``): exact low-pass path, causal, chunk-exact."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medsora.config import ConfigError, compose
from medsora.vae.model import FreqCompVAE


def _silenced(vae: FreqCompVAE) -> FreqCompVAE:
    """Zero both conv_out layers: the networks contribute nothing, only the shortcuts remain."""
    with torch.no_grad():
        for conv in (vae.base.encoder.conv_out.conv, vae.base.decoder.conv_out.conv):
            conv.weight.zero_()
            conv.bias.zero_()
    return vae


def _reference_low_pass(x: torch.Tensor) -> torch.Tensor:
    """What the shortcut alone must return, written out frame by frame: each output frame is the bilinear ×8
    upsampling of its group's (frame 0 alone, then 4 frames) 8×8 block means."""
    groups = [x[:, :, :1]] + [x[:, :, i:i + 4] for i in range(1, x.shape[2], 4)]
    out = []
    for g in groups:
        cells = F.avg_pool2d(g.mean(2), 8)
        up = F.interpolate(cells, scale_factor=8, mode="bilinear", align_corners=False)
        out += [up] * g.shape[2]
    return torch.stack(out, 2)


def test_silenced_vae_returns_exactly_the_low_pass_clip(tiny_cfg, video):
    vae = _silenced(FreqCompVAE.from_config(tiny_cfg(shortcut=True))).eval()
    x = video(batch=2, frames=13, size=32)
    with torch.no_grad():
        z = vae.encode(x).mode()
        y = vae.decode(z)
    assert z.shape == (2, 4, 4, 4, 4)
    torch.testing.assert_close(z[:, 3], torch.zeros_like(z[:, 3]))  # the 4th channel is the network's alone
    torch.testing.assert_close(y, _reference_low_pass(x), rtol=0, atol=1e-5)


def test_frame_mean_brightness_passes_with_slope_one(tiny_cfg, video):
    """The heart-rate benchmark's gain transfer: a per-frame brightness change survives the round trip."""
    vae = _silenced(FreqCompVAE.from_config(tiny_cfg(shortcut=True))).eval()
    x = video(frames=9, size=32) * 0.5
    gain = torch.tensor([0.0, 0.2, 0.2, 0.2, 0.2, -0.1, -0.1, -0.1, -0.1])[None, None, :, None, None]
    with torch.no_grad():
        a, b = vae(x, sample_posterior=False)[0], vae(x + gain, sample_posterior=False)[0]
    torch.testing.assert_close((b - a).mean(dim=(0, 1, 3, 4)), gain.flatten(), rtol=0, atol=1e-5)


def test_plain_vae_without_shortcut_loses_the_clip_when_silenced(tiny_cfg, video):
    """Control for the test above: without the shortcut a silenced VAE returns zeros."""
    vae = _silenced(FreqCompVAE.from_config(tiny_cfg())).eval()
    with torch.no_grad():
        y = vae(video(frames=5, size=16), sample_posterior=False)[0]
    assert y.abs().max() < 1e-6


def test_shortcut_keeps_causality_and_chunked_equals_full(tiny_cfg, randomise_branches, video):
    vae = randomise_branches(FreqCompVAE.from_config(tiny_cfg(shortcut=True))).eval()
    x = video(batch=2, frames=17, size=32)
    x2 = x.clone()
    x2[:, :, 6] += 0.5  # frame 6 belongs to latent frame 2
    with torch.no_grad():
        z, z2 = vae.encode(x).mode(), vae.encode(x2).mode()
        y, y2 = vae.decode(z), vae.decode(z2)
        vae.set_chunking(1)
        z_chunked = vae.encode(x).mode()
        y_chunked = vae.decode(z)
    torch.testing.assert_close(z2[:, :, :2], z[:, :, :2], rtol=0, atol=1e-6)
    torch.testing.assert_close(y2[:, :, :5], y[:, :, :5], rtol=0, atol=1e-6)
    assert (z2[:, :3, 2] - z[:, :3, 2]).abs().max() > 1e-3
    torch.testing.assert_close(z_chunked, z, rtol=0, atol=1e-5)
    torch.testing.assert_close(y_chunked, y, rtol=0, atol=1e-5)


def test_shortcut_needs_three_latent_channels():
    with pytest.raises(ConfigError, match="vae.shortcut"):
        compose("vae_demo", ["vae.shortcut=true", "vae.latent_channels=2"])
