"""The demo end to end at small scale: every stage runs, and its samples look like their modality."""
from __future__ import annotations

import torch

from medsora.fit import run_demo


def test_demo_trains_every_stage_and_samples_look_like_their_modality(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSORA_CACHE", str(tmp_path / "cache"))
    shared = ["data.demo_clips=24", "data.num_frames=5", "trainer.enable_progress_bar=false",
              "trainer.val_check_interval=null", "trainer.limit_val_batches=0", "trainer.log_every_n_steps=10",
              f"out_dir={tmp_path / 'runs'}"]
    summary = run_demo(shared, vae_overrides=["trainer.max_steps=60", "vae.log_videos=0"],
                       diffusion_overrides=["trainer.max_steps=400", "data.batch_size=16", "train.lr=2e-3",
                                            "train.warmup_steps=25", "train.ema_decay=0.99", "diffusion.sample_steps=25"])
    vae, diffusion = summary["vae"], summary["diffusion"]
    assert torch.load(vae.last_ckpt, weights_only=True)["global_step"] == 60
    assert torch.load(diffusion.last_ckpt, weights_only=True)["global_step"] == 400
    assert (summary["cache"] / "manifest.json").is_file()
    assert (diffusion.samples / "contact_sheet.png").is_file()
    assert len(list(diffusion.samples.glob("*.mp4"))) == len(list(diffusion.samples.glob("*.gif"))) == 8

    r = summary["realism"]
    trained, untrained, ceiling = r["trained"]["colour"], r["untrained"]["colour"], r["reconstruction"]["colour"]
    # colour histograms vs the real clips of each sample's modality: the trained model covers more than half
    # the way from the untrained model to the VAE's own reconstructions (the best reachable through it) ...
    assert trained < ceiling + 0.5 * (untrained - ceiling), r
    # ... and its samples are closer to their own modality than to the other three (the condition is used)
    assert trained < r["trained"]["colour_other"], r
