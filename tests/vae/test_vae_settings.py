"""The VAE is built from the whole ``vae:`` section: the model's settings reach the code that uses them."""
from __future__ import annotations

import pytest
import torch
from diffusers import AutoencoderKLCogVideoX
from omegaconf import OmegaConf

from medsora.vae.losses import VAELoss
from medsora.vae.model import FreqCompVAE
from medsora.vae.schema import VAEConfig

# What the model itself is built from (architecture of the base, branches, chunking); the rest of
# ``vae:`` belongs to training (VAELoss, VAEModule) or to the diffusion stage (ckpt, scaling_factor).
MODEL_SETTINGS = {"pretrained", "latent_channels", "block_out_channels", "layers_per_block", "norm_num_groups",
                  "norm", "freq_comp", "freq_kind", "freq_hidden", "freq_dropout", "chunk_frames", "tile_size",
                  "tile_overlap"}
LOSS_SETTINGS = {"kl_weight", "ffl_weight", "lpips_weight", "temporal_weight", "lpips", "lpips_weights"}

TINY = dict(latent_channels=4, block_out_channels=[8, 8, 8, 8], layers_per_block=1, norm_num_groups=4,
            freq_hidden=8, freq_dropout=0.0, lpips="off", lpips_weight=0.0)


def test_model_and_loss_read_their_settings(recording_config):
    cfg, reads = recording_config(VAEConfig(**TINY))
    vae = FreqCompVAE.from_config(cfg)
    assert vae.config is cfg
    assert MODEL_SETTINGS <= reads, f"vae settings the model never reads: {sorted(MODEL_SETTINGS - reads)}"
    cfg, reads = recording_config(VAEConfig(**dict(TINY, lpips_weight=0.1)))
    VAELoss.from_config(cfg)
    assert LOSS_SETTINGS <= reads, f"vae settings the loss never reads: {sorted(LOSS_SETTINGS - reads)}"


@pytest.mark.parametrize("source", ["section", "keywords"])
def test_section_and_keywords_build_the_same_vae(source):
    settings = dict(TINY, freq_kind="fft", norm="clip", chunk_frames=1)
    base = AutoencoderKLCogVideoX(latent_channels=4, block_out_channels=(8, 8, 8, 8), layers_per_block=1,
                                  norm_num_groups=4)
    torch.manual_seed(0)
    reference = FreqCompVAE(AutoencoderKLCogVideoX.from_config(base.config), VAEConfig(**settings))
    torch.manual_seed(0)
    fresh = AutoencoderKLCogVideoX.from_config(base.config)
    if source == "section":
        vae = FreqCompVAE(fresh, OmegaConf.structured(VAEConfig(**settings)))
    else:
        vae = FreqCompVAE(fresh, **settings)
    assert vae.config == reference.config and vae.norm == "clip"
    assert vae.base.num_latent_frames_batch_size == 1
    assert vae.encoder_branch.kind == "fft"
    ref = reference.state_dict()
    for key, value in vae.state_dict().items():
        assert torch.equal(value, ref[key]), key


def test_unknown_setting_is_refused_naming_it():
    base = AutoencoderKLCogVideoX(latent_channels=4, block_out_channels=(8, 8, 8, 8), layers_per_block=1,
                                  norm_num_groups=4)
    with pytest.raises(TypeError, match="freq_kinds"):
        FreqCompVAE(base, freq_kinds="fft")
