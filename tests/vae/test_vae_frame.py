"""vae=sd: a 2-D diffusers AutoencoderKL applied frame by frame (Bora, Open-Sora 1.0)."""
from __future__ import annotations

import pytest
import torch
from diffusers import AutoencoderKL

from medsora.config import ConfigError, compose
from medsora.vae.frame_vae import SD_SCALING_FACTOR, FrameVAE, save_tiny_sd_vae
from medsora.vae.select import latent_frames, load_frozen_vae, temporal_stride, vae_identity


@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory):
    """A tiny random AutoencoderKL with SD's 8x spatial stride, saved as a diffusers folder."""
    return save_tiny_sd_vae(tmp_path_factory.mktemp("sd-vae"))


def test_frame_by_frame_encode_decode_equal_diffusers(sd_dir):
    vae = FrameVAE.from_pretrained(str(sd_dir))
    base = AutoencoderKL.from_pretrained(sd_dir)
    video = torch.rand(2, 3, 5, 32, 32) * 2 - 1
    with torch.no_grad():
        post = vae.encode(video)
        assert post.mean.shape == (2, 4, 5, 4, 4) and vae.temporal_stride == 1 and vae.spatial_stride == 8
        z = post.mean * 1.5
        out = vae.decode(z)
        assert out.shape == (2, 3, 5, 32, 32)
        for f in range(5):
            ref = base.encode(video[:, :, f]).latent_dist
            torch.testing.assert_close(post.mean[:, :, f], ref.mean, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(post.std[:, :, f], ref.std, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(out[:, :, f], base.decode(z[:, :, f]).sample, rtol=1e-4, atol=1e-5)
        vae.set_chunking(chunk_frames=3)  # micro-batches of frames give the same result
        torch.testing.assert_close(vae.encode(video).mean, post.mean, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(vae.decode(z), out, rtol=1e-4, atol=1e-5)


def test_selection_strides_scale_and_errors(sd_dir, tmp_path):
    cfg = compose(overrides=["data.root=demo", "vae=sd", f"vae.pretrained={sd_dir}", "data.num_frames=16"])
    assert temporal_stride(cfg.vae) == 1 and latent_frames(cfg.vae, 16) == 16
    causal = compose(overrides=["data.root=demo", "data.num_frames=17"])
    assert temporal_stride(causal.vae) == 4 and latent_frames(causal.vae, 17) == 5
    vae, factor = load_frozen_vae(cfg.vae)
    assert isinstance(vae, FrameVAE) and factor == SD_SCALING_FACTOR == 0.18215
    assert not any(p.requires_grad for p in vae.parameters())
    assert len(vae_identity(cfg.vae)) == 64
    with pytest.raises(FileNotFoundError, match="vae.pretrained = .*sd-vae-ft-ema"):
        FrameVAE.from_pretrained(str(tmp_path))
    with pytest.raises(ValueError, match="vae=sd needs vae.pretrained=DIR"):
        load_frozen_vae(compose(overrides=["data.root=demo", "vae=sd"]).vae)
    with pytest.raises(ConfigError, match="required keys are not set: .*vae.pretrained"):
        compose("bora_reference_stage1", ["data.root=demo", "cond.text_encoder=/t5"])
