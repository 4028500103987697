"""Fixtures for the training tests: a synthetic encode cache and tiny run configs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from medsora.config import compose
from medsora.data.cache import shard_path, shard_plan, write_manifest, write_shard
from medsora.encoding.fingerprint import run_fingerprint

LATENT = (4, 2, 4, 4)  # C×T×h×w of a 5-frame 32×32 clip
MODALITIES = ("endoscopy", "mri")


def make_cache(root: Path, n_train: int = 8, n_val: int = 2, flow_dim: int = 2, seed: int = 0,
               shard_size: int = 4, fingerprint: dict | None = None) -> Path:
    """A small cache in the encode format: per-modality latent patterns plus noise.

    Flow targets (T×h'×w'×D on the patch-2 token grid) carry the latent's local mean so that the
    alignment term has something to find.
    """
    g = torch.Generator().manual_seed(seed)
    c, t, h, w = LATENT
    patterns = torch.randn(len(MODALITIES), c, 1, h, w, generator=g)
    splits = {}
    for split, n in (("train", n_train), ("val", n_val)):
        mods = [MODALITIES[i % len(MODALITIES)] for i in range(n)]
        mean = torch.stack([patterns[MODALITIES.index(m)].expand(c, t, h, w) for m in mods])
        mean = mean + 0.1 * torch.randn(n, c, t, h, w, generator=g)
        std = torch.full_like(mean, 0.05)
        pooled = torch.nn.functional.avg_pool3d(mean, (1, 2, 2))  # N×C×T×h'×w'
        flow = pooled[:, :flow_dim].permute(0, 2, 3, 4, 1).contiguous()
        # a heart rate on most clips (missing on every third: the null path), a label on all
        records = [{"caption": f"a {m} video", "modality": m, "path": f"{split}/{i}.mp4",
                    "attributes": json.dumps({**({"heart_rate": 50 + 10 * i} if i % 3 else {}),
                                              "view": ("apical", "parasternal")[i % 2]})}
                   for i, m in enumerate(mods)]
        for k, (a, b) in enumerate(shard_plan(n, shard_size)):
            write_shard(shard_path(root, split, k), {"latent_mean": mean[a:b], "latent_std": std[a:b],
                                                     "flow": flow[a:b]}, records[a:b])
        splits[split] = {"num_items": n, "shard_size": shard_size}
    fingerprint = fingerprint or run_fingerprint(compose(overrides=tiny_overrides(root, root)))
    write_manifest(root, {"splits": splits, "scaling_factor": 1.0, "fingerprint": fingerprint})
    return root


def tiny_overrides(cache: Path, out: Path, *extra: str) -> list[str]:
    """A tiny cached diffusion run on the CPU (alignment against 2-D flow targets)."""
    return [
        "data.root=demo", f"data.cache={cache}", "data.size=32", "data.num_frames=5", "data.batch_size=2",
        "model=tiny", "model.depth=1", "model.hidden=32", "model.projector_hidden=16", "model.window=2",
        "model.scan_impl=torch", "vae.latent_channels=4",
        "align.target=flow", "align.flow_cells=1", "align.teacher.weights=random",
        "trainer=cpu", "trainer.max_steps=4", "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false",
        "trainer.checkpoint_every_n_steps=2", "diffusion.sample_steps=4", "train.lr=1e-3", "train.ema_decay=0.9",
        f"out_dir={out}", "name=t", *extra,
    ]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return make_cache(tmp_path_factory.mktemp("cache"))


@pytest.fixture
def tiny_cfg(cache_dir, tmp_path):
    def build(*extra: str):
        return compose(overrides=tiny_overrides(cache_dir, tmp_path / "runs", *extra))
    return build


# Small enough for seconds per step on a CPU, for any experiment: the experiment keeps its block
# pattern, objective and conditioning; sizes shrink.
TINY_DATA = ["data.root=demo", "data.demo_clips=12", "data.size=32", "data.num_frames=5", "data.batch_size=1",
             "data.num_workers=0", "data.frame_stride=1", "data.adaptive_interval=false"]
TINY_VAE = ["vae.latent_channels=4", "vae.block_out_channels=[8,8,8,8]", "vae.layers_per_block=1",
            "vae.norm_num_groups=4", "vae.lpips='off'", "vae.pretrained=null", "vae.train_base=true",
            "vae.freq_hidden=8", "vae.log_videos=0"]
TINY_MODEL = ["model.depth=1", "model.hidden=32", "model.heads=2", "model.d_state=8", "model.headdim=8",
              "model.window=2", "model.projector_hidden=16", "model.scan_impl=torch", "model.grad_checkpointing=false"]
TINY_ALIGN = ["align.teacher.weights=random", "align.teacher.iters=2", "align.teacher.arch=raft_small"]
TINY_TRAINER = ["trainer=cpu", "trainer.max_steps=2", "trainer.log_every_n_steps=1", "trainer.val_check_interval=null",
                "trainer.limit_val_batches=1", "trainer.enable_progress_bar=false", "trainer.sample_every_n_steps=0",
                "diffusion.sample_steps=2", "train.init_from=null", "train.compile=false"]


def tiny_run_overrides(out: Path, vae_ckpt: Path | None = None, t5: Path | None = None) -> list[str]:
    """Overrides that shrink any experiment to a 2-step CPU run writing under ``out``."""
    extra = [f"out_dir={out}"]
    if vae_ckpt is not None:
        extra.append(f"vae.ckpt={vae_ckpt}")
    if t5 is not None:
        extra.append(f"cond.text_encoder={t5}")
    return [*TINY_DATA, *TINY_VAE, *TINY_MODEL, *TINY_ALIGN, *TINY_TRAINER, *extra]


@pytest.fixture(scope="session")
def tiny_vae_ckpt(tmp_path_factory) -> Path:
    """A VAEModule checkpoint of the tiny VAE after 2 steps on the demo set (any later stage can load it)."""
    from medsora.fit import fit_stage

    out = tmp_path_factory.mktemp("vae-run")
    cfg = compose(overrides=["stage=vae", "name=vae", *tiny_run_overrides(out), "train.ema=false"])
    return fit_stage(cfg).last_ckpt


@pytest.fixture(scope="session")
def tiny_t5_dir(tmp_path_factory) -> Path:
    from medsora.cond import save_tiny_t5

    return save_tiny_t5(tmp_path_factory.mktemp("t5"))


@pytest.fixture(scope="session")
def run_overrides():
    """:func:`tiny_run_overrides`, for test modules (conftest is not importable under importlib mode)."""
    return tiny_run_overrides


@pytest.fixture(scope="session")
def tiny_diffusion_ckpt(tmp_path_factory, tiny_vae_ckpt) -> Path:
    """A modality-conditioned tiny diffusion checkpoint (diffusion_demo, 2 steps on raw demo clips)."""
    from medsora.fit import fit_stage

    out = tmp_path_factory.mktemp("diffusion-run")
    cfg = compose("diffusion_demo", [*tiny_run_overrides(out, tiny_vae_ckpt), "name=diff"])
    return fit_stage(cfg).last_ckpt


@pytest.fixture
def cache_tools():
    """``(make_cache, tiny_overrides)`` for tests that build a cache of their own (conftest is not importable)."""
    return make_cache, tiny_overrides
