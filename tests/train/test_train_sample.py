"""Sampling from a checkpoint: deterministic per seed, independent of batching, CLI outputs."""
from __future__ import annotations

import json

import av
import numpy as np
import pytest
import torch
from PIL import Image

from medsora.training.diffusion_module import DiffusionModule
from medsora.sample import main as sample_main


@pytest.fixture(scope="module")
def module(tiny_diffusion_ckpt):
    return DiffusionModule.from_checkpoint(str(tiny_diffusion_ckpt))


def test_samples_depend_only_on_seed_and_index(module):
    a = module.generate(3, seed=5, steps=3, batch_size=3)
    b = module.generate(3, seed=5, steps=3, batch_size=2)  # other batching: same videos
    c = module.generate(1, seed=5, steps=3, start=2)
    d = module.generate(3, seed=6, steps=3)
    assert a.shape == (3, 3, 5, 32, 32) and a.abs().max() <= 1
    # batching changes only the floating-point summation order
    torch.testing.assert_close(a, b, rtol=1e-3, atol=5e-4)
    torch.testing.assert_close(a[2:], c, rtol=1e-3, atol=5e-4)
    assert not torch.allclose(a, d)


def test_checkpoint_holds_the_ema_weights(tiny_diffusion_ckpt, module):
    state = torch.load(tiny_diffusion_ckpt, weights_only=True)
    raw = state["current_model_state"]
    loaded = module.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state["state_dict"].items())
    assert any(not torch.equal(loaded[k], raw[k]) for k in raw)  # EMA ≠ raw weights after training


def test_sample_cli_writes_videos_sheet_and_record(tiny_diffusion_ckpt, tmp_path):
    args = ["--ckpt", str(tiny_diffusion_ckpt), "--num", "3", "--steps", "2", "--seed", "3", "--batch-size", "2",
            "--device", "cpu", "--no-progress"]
    first = sample_main([*args, "--out", str(tmp_path / "a")])
    sample_main([*args, "--out", str(tmp_path / "b")])
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "contact_sheet.png", "sample_000.gif", "sample_000.mp4", "sample_001.gif", "sample_001.mp4",
        "sample_002.gif", "sample_002.mp4", "samples.json"]
    record = json.loads((tmp_path / "a" / "samples.json").read_text())
    assert record["labels"] == first["labels"] and len(set(record["labels"])) == 3  # one modality each
    for name in ("sample_000.gif", "sample_001.gif", "sample_002.gif"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()  # same seed, same video
    with av.open(str(tmp_path / "a" / "sample_002.mp4")) as x:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in x.decode(video=0)])
    gif = Image.open(tmp_path / "a" / "sample_002.gif")
    first = np.asarray(gif.convert("RGB"))
    assert frames.shape == (5, 32, 32, 3) and getattr(gif, "n_frames", 1) == 5
    # the mp4 shows the same video: the samples of a 2-step sampler are noise, which the lossy codec
    # smooths, so compare colour means
    assert np.abs(frames[0].reshape(-1, 3).mean(0) - first.reshape(-1, 3).mean(0)).max() < 8


def test_unconditional_arguments_are_refused_with_a_fix(module):
    with pytest.raises(ValueError, match="got 2 modalities for 3 samples"):
        module.generate(3, modalities=["mri", "mri"], steps=2)


def test_checkpoint_records_its_objective_and_the_cli_refuses_a_sampler_that_does_not_fit(tiny_diffusion_ckpt,
                                                                                          tmp_path):
    hp = torch.load(tiny_diffusion_ckpt, weights_only=True)["hyper_parameters"]
    assert hp["cfg"]["diffusion"]["objective"] == "flow_matching"  # diffusion_demo trains with flow matching
    args = ["--ckpt", str(tiny_diffusion_ckpt), "--num", "1", "--out", str(tmp_path / "s"), "--no-progress"]
    for extra, match in ((["--sampler", "ddim"], r"'ddim' does not fit this model's objective 'flow_matching'.*"
                                                 r"use euler or heun"),
                         (["--steps", "0"], r"--steps.* = 0"),  # sample.py's own argument check or the sampler's
                         (["--cfg", "-2"], r"--cfg.* = -2")):
        with pytest.raises(ValueError, match=match) as err:
            sample_main([*args, *extra])
        assert "\n" not in str(err.value)
    assert not (tmp_path / "s" / "samples.json").exists()


def test_a_checkpoint_from_before_objectives_loads_as_ddpm(tiny_diffusion_ckpt, tmp_path):
    ckpt = torch.load(tiny_diffusion_ckpt, weights_only=True)
    diffusion = ckpt["hyper_parameters"]["cfg"]["diffusion"]
    for key in ("objective", "timestep_sampling", "logit_mean", "logit_std", "shift", "shift_base_tokens"):
        diffusion.pop(key)
    diffusion["sampler"] = "ddim"  # what every checkpoint of the Gaussian-only code had
    old = tmp_path / "old.ckpt"
    torch.save(ckpt, old)
    module = DiffusionModule.from_checkpoint(str(old))
    assert module.objective.name == "ddpm" and module.cfg.diffusion.objective == "ddpm"
    videos = module.generate(1, steps=2, sampler="dpmpp")
    assert videos.shape[0] == 1 and torch.isfinite(videos).all()
    with pytest.raises(ValueError, match="use ddpm or ddim or dpmpp"):
        module.generate(1, steps=2, sampler="euler")
