"""Attribute- and first-frame-conditioned runs resume exactly and train the same under DDP."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from lightning.pytorch import Callback

from medsora.fit import fit_stage

CONTROL = ("cond.modality=true", "cond.attributes.heart_rate.range=[40,160]",
           "cond.attributes.view.kind=label", "cond.attributes.view.values=[apical,parasternal]",
           "cond.attributes.view.dropout=0.3", "cond.first_frame=true", "cond.first_frame_dropout=0.3")


class Losses(Callback):
    def __init__(self):
        self.rows = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.rows.append((trainer.global_step, outputs["loss"].item(), tuple(batch["path"])))


def test_attribute_run_resumes_exactly(tiny_cfg):
    base = (*CONTROL, "trainer.checkpoint_every_n_steps=1", "trainer.max_steps=4")
    full = Losses()
    whole = fit_stage(tiny_cfg(*base), callbacks=[full])
    module_keys = torch.load(whole.last_ckpt, weights_only=True)["state_dict"].keys()
    assert any("cond_encoder.attributes.scalar.heart_rate" in k for k in module_keys)
    assert any("cond_encoder.attributes.label.view" in k for k in module_keys)
    crash = Losses()
    ckpt = whole.log_dir / "checkpoints" / "step=0000002.ckpt"
    resumed = fit_stage(tiny_cfg(*base, f"ckpt={ckpt}", "name=crash"), callbacks=[crash])
    assert crash.rows == full.rows[2:]
    a = torch.load(whole.last_ckpt, weights_only=True)["state_dict"]
    b = torch.load(resumed.last_ckpt, weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert "train/attr_missing/heart_rate" in whole.metrics  # missing values are counted and logged


def test_attribute_run_ddp_equals_one_process(tiny_cfg):
    common = (*CONTROL, "trainer.max_steps=2", "trainer.checkpoint_every_n_steps=100", "trainer.limit_val_batches=0")
    one = fit_stage(tiny_cfg(*common, "data.batch_size=4", "name=one"))
    two = fit_stage(tiny_cfg(*common, "data.batch_size=2", "trainer.devices=2", "trainer.strategy=ddp_spawn",
                             "name=two"))
    a = torch.load(one.last_ckpt, weights_only=True)["state_dict"]
    b = torch.load(two.last_ckpt, weights_only=True)["state_dict"]
    for name, value in a.items():
        torch.testing.assert_close(b[name], value, rtol=1e-5, atol=1e-6, msg=name)


@pytest.fixture(scope="module")
def control_ckpt(tmp_path_factory, tiny_vae_ckpt, run_overrides):
    """attr_demo (modality + heart rate) with image-to-video, 2 steps on raw demo clips."""
    from medsora.config import compose

    out = tmp_path_factory.mktemp("control-run")
    cfg = compose("attr_demo", [*run_overrides(out, tiny_vae_ckpt), "cond.first_frame=true", "name=control"])
    return fit_stage(cfg).last_ckpt


def test_generated_clip_starts_from_the_given_frame(control_ckpt, tmp_path):
    from PIL import Image

    from medsora.cond.first_frame import encode_first_frame, load_first_frame
    from medsora.training.diffusion_module import DiffusionModule

    module = DiffusionModule.from_checkpoint(str(control_ckpt))
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(tmp_path / "frame.png")
    image = load_first_frame(tmp_path / "frame.png", module.cfg.data)
    common = dict(seed=3, steps=3, modalities="ultrasound", attributes={"heart_rate": 60}, first_frames=image)
    z = module.generate(2, decode=False, **common)
    vae = module._vae.on("cpu")
    latent = encode_first_frame(vae, image[None].expand(2, -1, -1, -1), module.scaling_factor)
    assert torch.equal(z[:, :, :1], latent)  # kept exactly through sampling
    assert not torch.allclose(z[0, :, 1:], z[1, :, 1:])  # the rest is generated (two seeds differ)
    videos = module.generate(2, **common)
    with torch.no_grad():
        own = vae.decode(latent[:1] / module.scaling_factor).float().clamp(-1, 1)[0, :, 0]
    # the causal decoder's frame 0 depends on latent frame 0 alone: the VAE's own reconstruction
    torch.testing.assert_close(videos[0, :, 0], own, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(videos[1, :, 0], own, atol=1e-4, rtol=1e-4)


def test_sample_cli_takes_attributes_and_an_image(control_ckpt, tmp_path):
    import json

    from PIL import Image

    from medsora.sample import main as sample_main

    Image.fromarray(np.full((32, 32, 3), 90, dtype=np.uint8)).save(tmp_path / "frame.png")
    args = ["--ckpt", str(control_ckpt), "--num", "2", "--steps", "2", "--device", "cpu", "--no-progress",
            "--modality", "ultrasound", "--image", str(tmp_path / "frame.png")]
    record = sample_main([*args, "--out", str(tmp_path / "a"), "--attr", "heart_rate=60", "--cfg", "2",
                          "--guide-attr", "heart_rate"])
    saved = json.loads((tmp_path / "a" / "samples.json").read_text())
    assert saved["attributes"] == {"heart_rate": "60"} and saved["first_frame"] and record["guide_attributes"] == [
        "heart_rate"]
    with pytest.raises(ValueError, match=r"no attribute 'ef'; its attributes: heart_rate \(a number in \[40, 160\]\)"):
        sample_main([*args, "--out", str(tmp_path / "b"), "--attr", "ef=50"])
    with pytest.raises(ValueError, match=r"'heart_rate' = '200' is not a number in \[40, 160\]"):
        sample_main([*args, "--out", str(tmp_path / "b"), "--attr", "heart_rate=200"])


def test_exported_pipeline_takes_attributes_and_an_image(control_ckpt, tmp_path):
    """An attribute- and first-frame-conditioned run, exported: MedSoraPipeline(attributes=, image=) gives the
    same latents as the Lightning module, and refuses an unknown attribute naming the allowed ones."""
    from PIL import Image

    from medsora.cond.first_frame import load_first_frame
    from medsora.export.writer import export_checkpoint
    from medsora.pipeline import MedSoraPipeline
    from medsora.training.diffusion_module import DiffusionModule

    module = DiffusionModule.from_checkpoint(str(control_ckpt))
    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(tmp_path / "frame.png")
    export_checkpoint(control_ckpt, tmp_path / "model")
    pipe = MedSoraPipeline.from_pretrained(tmp_path / "model")
    pipe.set_progress_bar_config(disable=True)
    out = pipe(modality="ultrasound", attributes={"heart_rate": 60}, image=str(tmp_path / "frame.png"),
               num_videos=2, seed=3, num_inference_steps=3, output_type="latent")
    image = load_first_frame(tmp_path / "frame.png", module.cfg.data)
    ref = module.generate(2, seed=3, steps=3, modalities="ultrasound", attributes={"heart_rate": 60},
                          first_frames=image, decode=False, batch_size=2)
    assert torch.equal(out.frames, ref)
    with pytest.raises(ValueError, match="heart_rate"):
        pipe(attributes={"nope": 1}, num_videos=1, num_inference_steps=2, output_type="latent")
