"""Long videos from trained checkpoints: 3× the training length, the first window bit-equal to a plain sample,
windowed decoding, ``--frames`` checks, both extension modes, the exported pipeline."""
from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from medsora.config import compose
from medsora.sample import main as sample_main
from medsora.training.diffusion_module import DiffusionModule


@pytest.fixture(scope="module")
def module(tiny_diffusion_ckpt):
    """Modality-conditioned flow matching on 5-frame clips (2 latent frames), no context channels: replacement."""
    return DiffusionModule.from_checkpoint(str(tiny_diffusion_ckpt))


@pytest.fixture(scope="module")
def context_ckpt(tmp_path_factory, tiny_vae_ckpt, run_overrides):
    """A cond.first_frame model (context latents): extension by context."""
    from medsora.fit import fit_stage

    out = tmp_path_factory.mktemp("context-run")
    return fit_stage(compose("diffusion_demo", [*run_overrides(out, tiny_vae_ckpt), "cond.first_frame=true",
                                                "name=ctx"])).last_ckpt


def _decoder_calls(module):
    vae = module._vae.module
    seen = []
    handle = vae.base.decoder.register_forward_pre_hook(lambda m, args, kwargs: seen.append(args[0].shape[2]),
                                                       with_kwargs=True)
    return seen, handle


@pytest.mark.parametrize("which", ["replace", "context"])
def test_three_times_the_training_length_with_the_first_window_bit_equal(which, module, context_ckpt):
    model = module if which == "replace" else DiffusionModule.from_checkpoint(str(context_ckpt))
    assert model.latent_grid()[0] == 2 and bool(model.cfg.cond.first_frame) == (which == "context")
    common = dict(seed=4, steps=3, modalities=["endoscopy", "mri"])
    plain = model.generate(2, decode=False, **common)
    long = model.generate(2, decode=False, num_frames=13, **common)  # 3 × (5 − 1) + 1 frames, 4 latent frames
    assert long.shape == (2, 4, 4, 4, 4) and torch.equal(long[:, :, :2], plain)
    assert not torch.allclose(long[:, :, 2:], long[:, :, :2])  # the later windows are new frames, not copies
    plain_video = model.generate(2, **common)
    seen, handle = _decoder_calls(model)
    video = model.generate(2, num_frames=13, **common)
    handle.remove()
    assert video.shape == (2, 3, 13, 32, 32) and video.abs().max() <= 1
    assert torch.equal(video[:, :, :5], plain_video)  # the causal decoder's first window is the plain decode
    assert max(seen) <= 2 and sum(seen) == 4  # decoded one window at a time


def test_frames_up_to_the_training_length_sample_in_one_pass(module, context_ckpt):
    short = module.generate(1, seed=2, steps=2, decode=False, num_frames=1)
    assert short.shape == (1, 4, 1, 4, 4)
    context_model = DiffusionModule.from_checkpoint(str(context_ckpt))  # its (empty) context takes the short length
    assert context_model.generate(1, seed=2, steps=2, num_frames=1).shape == (1, 3, 1, 32, 32)
    same = module.generate(1, seed=2, steps=2, decode=False, num_frames=5)
    assert torch.equal(same, module.generate(1, seed=2, steps=2, decode=False))


def test_sample_cli_writes_long_videos_and_records_the_settings(tiny_diffusion_ckpt, tmp_path):
    record = sample_main(["--ckpt", str(tiny_diffusion_ckpt), "--num", "1", "--steps", "2", "--device", "cpu",
                          "--frames", "17", "--out", str(tmp_path), "--no-progress"])
    assert record["num_frames"] == 17 and record["overlap"] == 0 and record["context_frames"] == 1
    assert json.loads((tmp_path / "samples.json").read_text())["num_frames"] == 17
    assert Image.open(tmp_path / "sample_000.gif").n_frames == 17


@pytest.mark.parametrize("extra,match", [
    (["--frames", "12"], r"^--frames / num_frames = 12: must be 1 \+ 4k \(the VAE's frame stride\), e\.g\. 9 or 13$"),
    (["--frames", "13", "--overlap", "1"], r"--context-frames 1 \+ --overlap 1 latent frames leave no new frame"),
    (["--overlap", "1"], r"--overlap / --context-frames apply to long videos: add --frames N"),
    (["--frames", "5", "--overlap", "1"], r"--overlap 1: applies to --frames beyond the training length \(5 frames\)"),
])
def test_bad_long_video_arguments_fail_in_one_line_before_sampling(tiny_diffusion_ckpt, tmp_path, extra, match):
    with pytest.raises(ValueError, match=match):
        sample_main(["--ckpt", str(tiny_diffusion_ckpt), "--out", str(tmp_path / "s"), "--no-progress", *extra])
    assert not (tmp_path / "s").exists()


def test_exported_pipeline_extends_beyond_the_training_length(module, tiny_diffusion_ckpt, tmp_path):
    from medsora.export.writer import export_checkpoint
    from medsora.pipeline import MedSoraPipeline

    export_checkpoint(str(tiny_diffusion_ckpt), tmp_path / "exported")
    pipe = MedSoraPipeline.from_pretrained(tmp_path / "exported")
    pipe.set_progress_bar_config(disable=True)
    out = pipe(modality="endoscopy", num_frames=13, num_inference_steps=3, seed=4, output_type="latent")
    same = module.generate(1, seed=4, steps=3, modalities=["endoscopy"], decode=False, num_frames=13)
    assert out.frames.shape == (1, 4, 4, 4, 4)
    torch.testing.assert_close(out.frames, same)
