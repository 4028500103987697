"""Tiny VAE configurations and helpers for the VAE tests."""
from __future__ import annotations

import pytest
import torch
from diffusers import AutoencoderKLCogVideoX
from omegaconf import OmegaConf

from medsora.vae.model import FreqCompVAE
from medsora.vae.schema import VAEConfig


def _tiny_cfg(**overrides):
    """A ``vae:`` section of an 8-channel VAE (all four blocks 8 wide, GroupNorm with 4 groups)."""
    base = dict(latent_channels=4, block_out_channels=[8, 8, 8, 8], layers_per_block=1, norm_num_groups=4,
                freq_hidden=8, freq_dropout=0.0, lpips="off")
    base.update(overrides)
    return OmegaConf.structured(VAEConfig(**base))


def _randomise_branches(vae: FreqCompVAE, seed: int = 1) -> FreqCompVAE:
    """Give the zero-initialised branches non-zero weights, so that tests exercise them."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in vae.branch_parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=g))
    return vae


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one thread is much faster than two OpenMP threads fighting over a shared machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _plain_twin(vae: FreqCompVAE) -> FreqCompVAE:
    """A VAE without branches whose base has ``vae``'s weights (a fresh base: no hooks)."""
    plain = FreqCompVAE(AutoencoderKLCogVideoX.from_config(vae.base.config), freq_comp=False, norm=vae.norm)
    plain.base.load_state_dict(vae.base.state_dict())
    return plain.eval()


@pytest.fixture
def plain_twin():
    return _plain_twin


@pytest.fixture
def tiny_cfg():
    return _tiny_cfg


@pytest.fixture
def randomise_branches():
    return _randomise_branches


@pytest.fixture
def tiny_vae():
    """An eval-mode tiny VAE with active (non-zero) compensation branches."""
    return _randomise_branches(FreqCompVAE.from_config(_tiny_cfg())).eval()


@pytest.fixture
def video():
    """``B×3×F×H×W`` test clips in [-1, 1]: smooth moving patterns plus fine texture."""

    def make(batch: int = 1, frames: int = 9, size: int = 32, seed: int = 0) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        t = torch.arange(frames, dtype=torch.float32)[:, None, None]
        y, x = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                              indexing="ij")
        clips = []
        for b in range(batch):
            phase = torch.rand(3, generator=g) * 6.28
            chans = [torch.sin((x + 1.5 * t) / (4 + c) + phase[c]) * torch.cos((y - t) / (5 + b) + c) for c in range(3)]
            smooth = torch.stack(chans)  # 3×F×H×W
            clips.append(0.7 * smooth + 0.2 * torch.rand(3, frames, size, size, generator=g) - 0.1)
        return torch.stack(clips).clamp(-1, 1)

    return make
