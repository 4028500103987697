"""Training the VAE: the tiny VAE overfits a demo clip; frozen-base training; checkpoints and load_vae."""
from __future__ import annotations

import io
import math

import lightning as L
import numpy as np
import pytest
import torch
from diffusers import AutoencoderKLCogVideoX
from lightning.pytorch.loggers import TensorBoardLogger
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.data import DataLoader

from medsora.config import compose
from medsora.data.demo.assets import load_assets
from medsora.data.demo.endoscopy import make_endoscopy
from medsora.vae import load_vae
from medsora.training.vae_module import VAEModule
from medsora.vae.losses import VAELoss
from medsora.vae.model import FreqCompVAE


def _psnr(recon: torch.Tensor, target: torch.Tensor) -> float:
    return 10 * math.log10(4.0 / (recon.clamp(-1, 1) - target).square().mean().item())


def _endoscopy_clip(seed: int, frames: int, size: int) -> torch.Tensor:
    """A clip of the demo set's endoscopy generator: 1×3×F×H×W in [-1, 1]."""
    video, _ = make_endoscopy(load_assets(), np.random.default_rng(seed), frames, size, size)
    return video.permute(1, 0, 2, 3)[None].float() * 2 - 1


@pytest.fixture(scope="module")
def overfit():
    """The ``vae: tiny`` model trained on one 5-frame 32×32 demo clip until it passes 25 dB (≤ 150 steps)."""
    torch.manual_seed(0)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    cfg = compose(overrides=["data.root=demo", "vae=tiny", "vae.lpips='off'"]).vae
    vae, loss = FreqCompVAE.from_config(cfg), VAELoss.from_config(cfg)
    opt = torch.optim.Adam(vae.parameters(), lr=5e-3)
    clip = _endoscopy_clip(seed=0, frames=5, size=32)
    history = []
    for step in range(150):
        recon, posterior = vae(clip)
        terms = loss(recon, clip, posterior)
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
        if step % 10 == 9:
            with torch.no_grad():
                history.append(_psnr(vae.decode(vae.encode(clip).mode()), clip))
            if history[-1] > 25.5:
                break
    torch.set_num_threads(previous)
    return vae.eval(), clip, history


def test_tiny_vae_overfits_a_demo_clip(overfit):
    _, _, history = overfit
    assert history[0] < 22 and history[-1] > 25, history


def test_tiled_reconstruction_stays_close_on_the_trained_vae(overfit):
    """Tiling is approximate (per-tile normalisation, cut context): 64 px, tiles of 48 px blended over 16 px."""
    vae, _, _ = overfit
    clip = _endoscopy_clip(seed=3, frames=5, size=64)
    with torch.no_grad():
        full = vae.decode(vae.encode(clip).mode()).clamp(-1, 1)
        vae.set_chunking(chunk_frames=1, tile_size=48, tile_overlap=1 / 3)
        tiled = vae.decode(vae.encode(clip).mode()).clamp(-1, 1)
        vae.set_chunking()
    assert _psnr(tiled, full) > 22
    assert _psnr(tiled, clip) > _psnr(full, clip) - 2


def _clips(n: int, frames: int = 5, size: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [{"video": torch.rand(3, frames, size, size, generator=g) * 2 - 1} for _ in range(n)]


@pytest.fixture(scope="module")
def pretrained_dir(tmp_path_factory):
    torch.manual_seed(3)
    base = AutoencoderKLCogVideoX(latent_channels=4, block_out_channels=(8, 8, 8, 8), layers_per_block=1,
                                  norm_num_groups=4)
    folder = tmp_path_factory.mktemp("cogvideox-tiny")
    base.save_pretrained(folder)
    return folder


TINY = ["data.root=demo", "vae.latent_channels=4", "vae.block_out_channels=[8,8,8,8]", "vae.layers_per_block=1",
        "vae.norm_num_groups=4", "vae.freq_hidden=8", "vae.lpips='off'", "vae.freq_dropout=0.0"]


@pytest.fixture(scope="module")
def frozen_run(pretrained_dir, tmp_path_factory):
    """Three steps of MedSora's recipe (frozen pretrained base) with Lightning, plus one validation."""
    out = tmp_path_factory.mktemp("vae-run")
    cfg = compose(overrides=["stage=vae", *TINY, f"vae.pretrained={pretrained_dir}", "vae.train_base=false",
                             "vae.lr=1e-2", "vae.log_videos=2", "train.warmup_steps=2"])
    module = VAEModule(cfg)
    before = {k: v.clone() for k, v in module.vae.base.state_dict().items()}
    branches_before = [p.detach().clone() for p in module.vae.branch_parameters()]
    trainer = L.Trainer(max_steps=3, accelerator="cpu", devices=1, logger=TensorBoardLogger(out, name="t"),
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, limit_val_batches=1, val_check_interval=3, log_every_n_steps=1)
    trainer.fit(module, DataLoader(_clips(6), batch_size=2), DataLoader(_clips(2, seed=1), batch_size=2))
    ckpt = out / "vae.ckpt"
    trainer.save_checkpoint(ckpt, weights_only=False)
    return module, before, branches_before, ckpt, trainer


def test_frozen_base_training_leaves_base_weights_untouched(frozen_run):
    module, before, branches_before, _, _ = frozen_run
    assert all(torch.equal(v, before[k]) for k, v in module.vae.base.state_dict().items())
    changed = [not torch.equal(p, q) for p, q in zip(module.vae.branch_parameters(), branches_before)]
    assert any(changed)
    assert all(not p.requires_grad for p in module.vae.base.parameters())


def test_terms_are_logged_by_name_and_reconstructions_as_animations(frozen_run):
    _, _, _, _, trainer = frozen_run
    logged = set(trainer.logged_metrics)
    assert {"train/loss", "train/l1", "train/kl", "train/ffl", "train/latent_std", "val/psnr", "val/hf_error"} <= logged
    events = EventAccumulator(trainer.logger.log_dir, size_guidance={"images": 0})
    events.Reload()
    image = events.Images("val/reconstruction")[-1]
    gif = Image.open(io.BytesIO(image.encoded_image_string))
    assert gif.format == "GIF" and gif.n_frames == 5 and gif.size == (2 * 16, 2 * 16)  # input | recon, 2 clips


def test_checkpoint_reloads_with_load_vae(frozen_run, video):
    module, _, _, ckpt, _ = frozen_run
    vae, factor = load_vae(ckpt)
    assert factor == pytest.approx(module.scaling_factor) and 0 < factor < math.inf
    assert not vae.training and not any(p.requires_grad for p in vae.parameters())
    x = video(frames=5, size=16)
    module.vae.eval()
    with torch.no_grad():
        assert torch.equal(vae(x, sample_posterior=False)[0], module.vae(x, sample_posterior=False)[0])


def test_measured_scale_is_one_over_the_latent_std():
    module = VAEModule(compose(overrides=["stage=vae", *TINY, "vae.scale_ema=0.9"]))
    assert module.scaling_factor is None
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        module._update_moments(0.5 + 2.0 * torch.randn(4, 4, 2, 8, 8, generator=g))
    assert module.scaling_factor == pytest.approx(0.5, rel=0.05)
    fixed = VAEModule(compose(overrides=["stage=vae", *TINY, "vae.scaling_factor=0.7"]))
    assert fixed.scaling_factor == 0.7


def test_configuration_errors_are_explained(tmp_path):
    with pytest.raises(ValueError, match="vae.train_base=false .* set vae.pretrained=DIR"):
        VAEModule(compose(overrides=["stage=vae", *TINY, "vae.train_base=false"]))
    not_vae = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}}, not_vae)
    with pytest.raises(ValueError, match="not a VAE checkpoint .* experiment=vae_demo"):
        load_vae(not_vae)
    with pytest.raises(FileNotFoundError):
        load_vae(tmp_path / "missing.ckpt")


def test_experiment_configs_compose_into_a_vae_stage(tmp_path):
    demo = compose("vae_demo", ["vae.lpips='off'"])
    assert demo.stage == "vae" and demo.vae.latent_channels == 4 and demo.data.root == "demo"
    module = VAEModule(demo)
    assert module.vae.latent_channels == 4 and module.vae.freq_comp
    full = compose("vae_medsora", ["data.root=/data/videos", f"vae.pretrained={tmp_path}"])  # must be a folder
    assert full.vae.latent_channels == 16 and not full.vae.train_base and full.data.batch_size == 1
    with pytest.raises(ValueError, match="vae.pretrained=None"):
        VAEModule(compose("vae_medsora", ["data.root=/data/videos"]))


def test_gradient_checkpointing_keeps_gradients_and_chunk_caches(tiny_cfg, randomise_branches, video):
    """Under checkpointing diffusers passes the conv cache positionally; the branches must still see it."""
    vae = randomise_branches(FreqCompVAE.from_config(tiny_cfg())).train()
    x = video(batch=2, frames=9, size=16)

    def grads():
        vae.zero_grad()
        recon, _ = vae(x, sample_posterior=False)
        recon.square().mean().backward()
        return recon.detach(), [p.grad.clone() for p in vae.parameters()]

    out, plain = grads()
    vae.base.enable_gradient_checkpointing()
    vae.set_chunking(chunk_frames=1)
    out_ck, checkpointed = grads()
    torch.testing.assert_close(out_ck, out, rtol=0, atol=1e-5)
    for a, b in zip(checkpointed, plain):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
