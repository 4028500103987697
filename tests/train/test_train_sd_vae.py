"""vae=sd end to end: two diffusion steps, a decoded sample and an encode cache on a frame-wise 2-D VAE."""
from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch.utils.data import Subset

from medsora.config import compose
from medsora.vae.frame_vae import save_tiny_sd_vae
from medsora.vae.select import load_frozen_vae, vae_identity


@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory):
    return save_tiny_sd_vae(tmp_path_factory.mktemp("sd-vae"))


def test_two_diffusion_steps_and_a_sample_on_the_frame_vae(sd_dir, tmp_path, run_overrides):
    """diffusion_demo with vae=sd: 4-frame clips (not 1 + 4k) give 4 latent frames; OFRA's flow targets map
    one flow group per latent frame; two steps train and a sample decodes to 4 frames."""
    from medsora.fit import fit_stage
    from medsora.training.diffusion_module import DiffusionModule

    cfg = compose("diffusion_demo", [*run_overrides(tmp_path), "vae=sd", f"vae.pretrained={sd_dir}",
                                     "vae.latent_channels=4", "data.num_frames=4"])
    result = fit_stage(cfg)
    ckpt = torch.load(result.last_ckpt, weights_only=False)
    assert ckpt["global_step"] == 2
    assert not any(k.startswith("_vae") for k in ckpt["state_dict"])  # the frozen VAE is not stored
    module = DiffusionModule.load_from_checkpoint(result.last_ckpt, for_training=False)
    assert module.latent_grid() == (4, 4, 4) and module.scaling_factor == pytest.approx(0.18215)
    video = module.generate(1, seed=0, steps=2)
    assert video.shape == (1, 3, 4, 32, 32) and torch.isfinite(video).all()
    from medsora.export.writer import ExportError, export_checkpoint

    with pytest.raises(ExportError, match="vae=sd"):
        export_checkpoint(result.last_ckpt, tmp_path / "export")


def test_encode_cache_with_the_frame_vae_has_one_latent_per_frame(sd_dir, tmp_path):
    from medsora.data.cache import CacheDataset
    from medsora.encode import clip_datasets, encode_cache
    from medsora.flow import FlowTeacher

    cfg = compose(overrides=["data.root=demo", "data.demo_clips=4", "data.size=32", "data.num_frames=4",
                             "data.batch_size=2", "vae=sd", f"vae.pretrained={sd_dir}", "vae.latent_channels=4",
                             "align.teacher.weights=random", "align.teacher.iters=1", f"data.cache={tmp_path}"])
    vae, factor = load_frozen_vae(cfg.vae)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        teacher = FlowTeacher.from_config(cfg.align)
    train = clip_datasets(cfg.data, ["train"])["train"]
    encode_cache(cfg, vae, factor, teacher, vae_identity(cfg.vae), shard_size=2, progress=False,
                 datasets={"train": Subset(train, [0, 1])})
    item = CacheDataset(tmp_path, "train")[0]
    assert item["latent_mean"].shape == (4, 4, 4, 4) and item["flow"].shape[0] == 4
    assert math.isclose(CacheDataset(tmp_path, "train").scaling_factor, 0.18215)
