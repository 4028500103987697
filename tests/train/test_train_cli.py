"""The fit command line: validation before anything runs, --print-config, run folders across DDP ranks."""
from __future__ import annotations

import json
import os

import pytest

from medsora.config import ConfigError, compose
from medsora.fit import _logger, data_overrides
from medsora.fit import main as fit_main


def test_an_unknown_key_fails_at_start_up(tmp_path):
    with pytest.raises(ConfigError, match=r"trainer.bogus"):
        fit_main(["experiment=diffusion_demo", "trainer.bogus=1", f"out_dir={tmp_path}"])
    assert not any(tmp_path.iterdir())  # nothing ran, nothing was written


def test_print_config_shows_the_merged_config(capsys):
    cfg = fit_main(["experiment=diffusion_demo", "train.lr=0.5", "--print-config"])
    printed = capsys.readouterr().out
    assert cfg.train.lr == 0.5 and "lr: 0.5" in printed and "stage: diffusion" in printed


def test_no_arguments_means_the_demo(capsys):
    cfg = fit_main(["--print-config"])
    assert cfg.stage == "demo"


def test_demo_stages_share_the_clips_but_not_the_loader_settings():
    shared = data_overrides(compose("demo", ["data.num_frames=9"]).data)
    vae, diff = compose("vae_demo", shared), compose("diffusion_demo", shared)
    assert vae.data.num_frames == diff.data.num_frames == 9
    assert vae.data.batch_size != diff.data.batch_size  # each stage keeps its own batch size


def test_ddp_ranks_launched_by_lightning_use_rank_zeros_run_folder(tmp_path, monkeypatch):
    cfg = compose("diffusion_demo", [f"out_dir={tmp_path}"])
    (tmp_path / "demo_diffusion" / "version_0").mkdir(parents=True)
    monkeypatch.delenv("MEDSORA_LOG_VERSIONS", raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    rank0 = _logger(cfg, None)
    assert rank0.version == "version_1"
    # a rank started later by the ddp launcher sees version_1 on disk too, but takes rank 0's choice
    (tmp_path / "demo_diffusion" / "version_1").mkdir()
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert _logger(cfg, None).version == "version_1"
    # without the launcher's LOCAL_RANK, a new run in the same process takes the next free version
    monkeypatch.delenv("LOCAL_RANK")
    assert _logger(cfg, None).version == "version_2"
    assert json.loads(os.environ["MEDSORA_LOG_VERSIONS"])[str((tmp_path / "demo_diffusion").resolve())] == "version_2"


def test_the_summary_shows_the_last_losses_and_says_when_a_short_run_never_validated(tmp_path, run_overrides):
    from medsora.training.stage import fit_stage, stage_summary

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for video in ("a", "b", "c"):  # three videos: one kept for validation
        (tmp_path / "data" / "echo" / video).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
                tmp_path / "data" / "echo" / video / f"{i}.png")
    base = ["stage=vae", "name=vae", *run_overrides(tmp_path), "train.ema=false", f"data.root={tmp_path / 'data'}"]
    short = fit_stage(compose(overrides=[*base, "trainer.val_check_interval=3"]))  # 2 steps < 3: never validates
    text = stage_summary(short)
    assert "no validation ran: trainer.val_check_interval=3 is more than the 2 steps trained" in text
    assert "trainer.val_check_interval=2 (or less)" in text and "train/loss" in text and "val/psnr" not in text
    whole = fit_stage(compose(overrides=[*base, "trainer.val_check_interval=2"]))
    text = stage_summary(whole)
    assert not whole.notes and "note" not in text
    assert f"val/psnr {whole.metrics['val/psnr']:.4g}" in text and f"val/loss {whole.metrics['val/loss']:.4g}" in text
