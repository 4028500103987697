"""Causality of the VAE: a change in input frame j leaves every earlier latent/output group unchanged."""
from __future__ import annotations

import pytest
import torch

from medsora.vae.model import FreqCompVAE


def _group(frame: int) -> int:
    """Latent frame holding input frame ``frame``: 0 alone, then groups of 4 (1-4, 5-8, ...)."""
    return (frame + 3) // 4


@pytest.mark.parametrize("frame", [1, 4, 6, 12])
def test_change_in_frame_j_leaves_earlier_latents_and_outputs_unchanged(tiny_vae, video, frame):
    x = video(batch=2, frames=13)  # 4 latent frames: an even count, the case diffusers' decoder gets wrong
    x2 = x.clone()
    x2[:, :, frame] += 0.5
    with torch.no_grad():
        z, z2 = tiny_vae.encode(x).mode(), tiny_vae.encode(x2).mode()
        y, y2 = tiny_vae.decode(z), tiny_vae.decode(z2)
    g = _group(frame)
    first_out = 4 * g - 3  # first output frame decoded from latent frame g
    torch.testing.assert_close(z2[:, :, :g], z[:, :, :g], rtol=0, atol=1e-6)
    torch.testing.assert_close(y2[:, :, :first_out], y[:, :, :first_out], rtol=0, atol=1e-6)
    # ... and the change does reach its own group and what follows
    assert (z2[:, :, g] - z[:, :, g]).abs().max() > 1e-4
    assert (y2[:, :, first_out:] - y[:, :, first_out:]).abs().amax(dim=(0, 1, 3, 4)).min() > 1e-5


def test_decoder_is_causal_in_latent_frames(tiny_vae):
    z = torch.randn(1, 4, 4, 4, 4)
    z2 = z.clone()
    z2[:, :, 2] += 1.0
    with torch.no_grad():
        y, y2 = tiny_vae.decode(z), tiny_vae.decode(z2)
    torch.testing.assert_close(y2[:, :, :5], y[:, :, :5], rtol=0, atol=1e-6)  # frames of latents 0 and 1
    assert (y2[:, :, 5:9] - y[:, :, 5:9]).abs().amax(dim=(0, 1, 3, 4)).min() > 1e-5


@pytest.mark.parametrize("frames", [1, 5, 9, 13, 17])
def test_frame_counts_follow_1_plus_4k(tiny_vae, video, frames):
    with torch.no_grad():
        z = tiny_vae.encode(video(frames=frames, size=16)).mode()
        y = tiny_vae.decode(z)
    assert z.shape == (1, 4, 1 + (frames - 1) // 4, 2, 2)
    assert y.shape == (1, 3, frames, 16, 16)


def test_clip_norm_is_not_causal(tiny_cfg, randomise_branches, video):
    """Why ``norm: frame`` is the default: diffusers' clip-wide GroupNorm lets the last frame reach latent 0."""
    vae = randomise_branches(FreqCompVAE.from_config(tiny_cfg(norm="clip"))).eval()
    x = video(frames=9)
    x2 = x.clone()
    x2[:, :, -1] += 0.5
    with torch.no_grad():
        change = (vae.encode(x2).mode() - vae.encode(x).mode())[:, :, 0].abs().max()
    assert change > 1e-4


def test_bad_video_shapes_are_explained(tiny_vae):
    with pytest.raises(ValueError, match=r"1 \+ 4k frames .* data.num_frames to 9 or 13"):
        tiny_vae.encode(torch.zeros(1, 3, 10, 16, 16))
    with pytest.raises(ValueError, match="multiples of 8"):
        tiny_vae.encode(torch.zeros(1, 3, 5, 20, 16))
    with pytest.raises(ValueError, match=r"B×3×F×H×W"):
        tiny_vae.encode(torch.zeros(3, 5, 16, 16))
    with pytest.raises(ValueError, match=r"latents B×4×T×h×w"):
        tiny_vae.decode(torch.zeros(1, 3, 2, 2, 2))
