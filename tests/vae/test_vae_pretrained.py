"""Pretrained start: a diffusers CogVideoX VAE saved with ``save_pretrained`` is reproduced exactly,
with or without the (zero-initialised) compensation branches; ``freq_comp: false`` is the plain model."""
from __future__ import annotations

import pytest
import torch
from diffusers import AutoencoderKLCogVideoX
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

from medsora.vae.model import FreqCompVAE


@pytest.fixture(scope="module")
def pretrained_dir(tmp_path_factory):
    """A tiny random CogVideoX VAE written the way diffusers ships them (config.json + safetensors)."""
    torch.manual_seed(3)
    ref = AutoencoderKLCogVideoX(latent_channels=4, block_out_channels=(8, 8, 8, 8), layers_per_block=1,
                                 norm_num_groups=4)
    folder = tmp_path_factory.mktemp("cogvideox") / "vae"
    ref.save_pretrained(folder)
    return folder


def _reference(folder):
    """diffusers' own model and a true single full pass through it (its ``encode`` batches frames)."""
    ref = AutoencoderKLCogVideoX.from_pretrained(folder).eval()

    def run(x):
        posterior = DiagonalGaussianDistribution(ref.encoder(x)[0])
        return posterior, ref.decoder(posterior.mode())[0]

    return ref, run


@pytest.mark.parametrize("freq_comp", [True, False])
def test_pretrained_load_reproduces_diffusers_exactly(pretrained_dir, tiny_cfg, video, freq_comp):
    ref, run = _reference(pretrained_dir)
    vae = FreqCompVAE.from_config(tiny_cfg(pretrained=str(pretrained_dir), norm="clip", freq_comp=freq_comp)).eval()
    x = video(frames=9)  # 3 latent frames: a length diffusers' decoder handles
    with torch.no_grad():
        want_post, want = run(x)
        post = vae.encode(x)
        got = vae.decode(post.mode())
    assert torch.equal(post.mean, want_post.mean) and torch.equal(post.std, want_post.std)
    assert torch.equal(got, want)
    assert (len(vae.branch_parameters()) > 0) == freq_comp


def test_frame_norm_keeps_the_weights_and_matches_on_images(pretrained_dir, tiny_cfg, video):
    """Per-frame statistics change nothing for a single frame (image) and keep every weight."""
    ref, run = _reference(pretrained_dir)
    vae = FreqCompVAE.from_config(tiny_cfg(pretrained=str(pretrained_dir), norm="frame")).eval()
    ref_state = ref.state_dict()
    assert vae.base.state_dict().keys() == ref_state.keys()
    assert all(torch.equal(t, ref_state[k]) for k, t in vae.base.state_dict().items())
    x = video(frames=1)
    with torch.no_grad():
        want_post, want = run(x)
        post = vae.encode(x)
        got = vae.decode(post.mode())
    torch.testing.assert_close(post.mean, want_post.mean, rtol=0, atol=1e-6)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_zero_initialised_branches_reproduce_the_base_until_trained(pretrained_dir, tiny_cfg, video, plain_twin,
                                                                    randomise_branches):
    vae = FreqCompVAE.from_config(tiny_cfg(pretrained=str(pretrained_dir))).eval()
    plain = plain_twin(vae)
    x = video(frames=9)
    with torch.no_grad():
        assert torch.equal(vae(x, sample_posterior=False)[0], plain(x, sample_posterior=False)[0])
        randomise_branches(vae)
        assert (vae(x, sample_posterior=False)[0] - plain(x, sample_posterior=False)[0]).abs().max() > 1e-3


def test_pipeline_folder_with_vae_subfolder_loads(pretrained_dir, tiny_cfg):
    vae = FreqCompVAE.from_config(tiny_cfg(pretrained=str(pretrained_dir.parent)))
    assert vae.latent_channels == 4


def test_pretrained_errors_name_the_key_and_the_fix(pretrained_dir, tiny_cfg, tmp_path):
    with pytest.raises(ValueError, match=r"vae.latent_channels=16 but the folder has 4"):
        FreqCompVAE.from_config(tiny_cfg(pretrained=str(pretrained_dir), latent_channels=16))
    with pytest.raises(FileNotFoundError, match=r"vae.pretrained = .*huggingface-cli download"):
        FreqCompVAE.from_config(tiny_cfg(pretrained=str(tmp_path / "nowhere")))


@pytest.mark.slow
def test_full_size_cogvideox_is_reproduced_through_vae_pretrained(tmp_path):
    """configs/vae/medsora.yaml + vae.pretrained on a full-size (default-config) CogVideoX VAE with random
    weights: with the default ``norm: auto`` and zero-initialised branches, diffusers' own ``encode`` and
    ``decode`` come out exactly."""
    from medsora.config import compose

    torch.manual_seed(0)
    ref = AutoencoderKLCogVideoX().eval()  # diffusers' defaults: 16 latent channels, blocks 128-256-256-512
    ref.save_pretrained(tmp_path / "vae")
    cfg = compose("vae_medsora", [f"vae.pretrained={tmp_path / 'vae'}", "data.root=/videos", "vae.chunk_frames=0"]).vae
    assert cfg.norm == "auto" and cfg.freq_comp
    vae = FreqCompVAE.from_config(cfg).eval()
    assert vae.norm == "clip"
    x = torch.rand(1, 3, 9, 16, 16) * 2 - 1
    with torch.no_grad():
        want_post = ref.encode(x).latent_dist
        z = want_post.mode()
        want = ref.decode(z).sample
        post = vae.encode(x)
        got = vae.decode(z)
    assert torch.equal(post.mean, want_post.mean) and torch.equal(post.std, want_post.std)
    assert torch.equal(got, want)
