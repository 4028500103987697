"""Export to a diffusers folder, MedSoraPipeline and ``sample --model``: same weights, same videos."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from medsora.export.__main__ import main as export_main
from medsora.export.components import MedSoraVAE
from medsora.pipeline import MedSoraPipeline
from medsora.training.diffusion_module import DiffusionModule

ALLOWED_SUFFIXES = {".json", ".safetensors", ".md"}
PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05", b"PK\x03\x04")  # pickle / torch zip


@pytest.fixture(scope="module")
def exported(tiny_diffusion_ckpt, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "model"
    export_main(["--ckpt", str(tiny_diffusion_ckpt), "--out", str(out)])
    return out


@pytest.fixture(scope="module")
def module(tiny_diffusion_ckpt):
    return DiffusionModule.from_checkpoint(str(tiny_diffusion_ckpt))


def test_folder_layout_and_no_pickle(exported):
    names = {p.name for p in exported.iterdir()}
    assert {"model_index.json", "transformer", "vae", "scheduler", "condition_encoder", "README.md"} <= names
    index = json.loads((exported / "model_index.json").read_text())
    assert index["_class_name"] == "MedSoraPipeline"
    assert index["transformer"] == ["medsora.export.components", "MedSoraTransformer"]
    for path in exported.rglob("*"):
        if path.is_file():
            assert path.suffix in ALLOWED_SUFFIXES, path
            assert not path.read_bytes()[:4].startswith(PICKLE_MAGIC), path
    card = (exported / "README.md").read_text()
    assert "EMA" in card and "objective" in card and "MedSoraPipeline.from_pretrained" in card


def test_from_pretrained_has_identical_parameters(exported, module):
    pipe = MedSoraPipeline.from_pretrained(exported)
    own = {k: v for k, v in module.backbone.state_dict().items() if not k.startswith("projector.")}
    loaded = pipe.transformer.backbone.state_dict()
    assert own.keys() == loaded.keys() and all(torch.equal(own[k], loaded[k]) for k in own)
    vae_own, vae_loaded = module._vae.module.state_dict(), pipe.vae.vae.state_dict()
    assert all(torch.equal(vae_own[k], vae_loaded[k]) for k in vae_own)
    assert pipe.vae.config.scaling_factor == pytest.approx(module.scaling_factor, rel=0, abs=0)
    cond_own, cond_loaded = module.cond_encoder.state_dict(), pipe.condition_encoder.encoder.state_dict()
    assert all(torch.equal(cond_own[k], cond_loaded[k]) for k in cond_own)
    assert pipe.condition_encoder.modalities == list(module.cond_encoder.modality.names)


def test_pipeline_equals_lightning_sampling_bit_for_bit(exported, module):
    pipe = MedSoraPipeline.from_pretrained(exported)
    pipe.set_progress_bar_config(disable=True)
    gens = [torch.Generator().manual_seed(11 + i) for i in range(2)]
    out = pipe(modality=["endoscopy", "ultrasound"], generator=gens, num_inference_steps=3, guidance_scale=2.0,
               output_type="pt")
    ref = module.generate(2, seed=11, steps=3, guidance_scale=2.0, modalities=["endoscopy", "ultrasound"], batch_size=2)
    assert torch.equal(out.frames, ((ref / 2 + 0.5).clamp(0, 1)).permute(0, 2, 1, 3, 4))
    assert out.labels == ["endoscopy", "ultrasound"]
    seeded = pipe(modality="endoscopy", num_videos=2, seed=11, num_inference_steps=3, guidance_scale=2.0, output_type="latent")
    lat = module.generate(2, seed=11, steps=3, guidance_scale=2.0, modalities="endoscopy", batch_size=2, decode=False)
    assert torch.equal(seeded.frames, lat)


def test_exported_scheduler_has_the_runs_time_shift(exported, module):
    """The flow-matching shift depends on the latent grid; the folder's scheduler records the one sampling uses."""
    from medsora.diffusion.time_shift import size_shift

    cfg = module.cfg.diffusion
    assert cfg.objective == "flow_matching"
    expected = size_shift(cfg.shift, cfg.shift_base_tokens, module.latent_grid())
    assert expected != pytest.approx(cfg.shift)  # the grid moves it, so the test tells the two apart
    assert MedSoraPipeline.from_pretrained(exported).scheduler.config.shift == pytest.approx(expected)


def test_pipeline_refuses_what_the_model_cannot_do(exported):
    pipe = MedSoraPipeline.from_pretrained(exported)
    with pytest.raises(ValueError, match=r"image=.*conditioned on modality"):
        pipe(image="frame.png")
    with pytest.raises(ValueError, match=r"prompt=.*not text-conditioned.*modality"):
        pipe(prompt="a polyp")
    with pytest.raises(ValueError, match=r"attributes=.*modality"):
        pipe(attributes={"heart_rate": 60})
    with pytest.raises(ValueError, match=r"num_frames=6: must be 1 \+ 4k"):
        pipe(num_frames=6)
    with pytest.raises(ValueError, match=r"num_videos=3 disagrees with .*\[2\]"):
        pipe(num_videos=3, generator=[torch.Generator(), torch.Generator()])
    with pytest.raises(ValueError, match="1 generators for 3 videos: pass one per video"):
        pipe(num_videos=3, generator=torch.Generator())


def test_missing_or_mismatched_component_is_named(exported, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(exported, broken)
    shutil.rmtree(broken / "vae")
    with pytest.raises(ValueError, match=r"component 'vae/'.*missing"):
        MedSoraPipeline.from_pretrained(broken)
    other = tmp_path / "other"
    shutil.copytree(exported, other)
    config = json.loads((other / "transformer" / "config.json").read_text())
    config["run"]["model"]["hidden"] = 2 * config["run"]["model"]["hidden"]
    (other / "transformer" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"component 'transformer' \(MedSoraTransformer\) does not load"):
        MedSoraPipeline.from_pretrained(other)
    with pytest.raises(FileNotFoundError, match="no model_index.json"):
        MedSoraPipeline.from_pretrained(tmp_path)


def test_non_empty_target_needs_force_and_no_ema_exports_raw_weights(tiny_diffusion_ckpt, exported, tmp_path):
    with pytest.raises(ValueError, match="not empty: .*--force"):
        export_main(["--ckpt", str(tiny_diffusion_ckpt), "--out", str(exported)])
    raw = tmp_path / "raw"
    export_main(["--ckpt", str(tiny_diffusion_ckpt), "--out", str(raw), "--no-ema"])
    state = torch.load(tiny_diffusion_ckpt, weights_only=True)["current_model_state"]
    loaded = MedSoraPipeline.from_pretrained(raw).transformer.backbone.state_dict()
    assert all(torch.equal(loaded[k], state["backbone." + k]) for k in loaded)
    assert "raw (non-EMA)" in (raw / "README.md").read_text()


def test_vae_only_run_exports_the_vae(tiny_vae_ckpt, tmp_path):
    from medsora.vae import load_vae

    out = tmp_path / "vae-export"
    export_main(["--ckpt", str(tiny_vae_ckpt), "--out", str(out)])
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "vae"]
    loaded = MedSoraVAE.from_pretrained(out / "vae", low_cpu_mem_usage=False)
    vae, factor = load_vae(tiny_vae_ckpt)
    assert loaded.config.scaling_factor == factor
    video = torch.rand(1, 3, 5, 32, 32) * 2 - 1
    torch.testing.assert_close(loaded.encode(video).mode(), vae.encode(video).mode(), rtol=0, atol=0)


def test_sample_cli_from_folder_equals_from_checkpoint(exported, tiny_diffusion_ckpt, tmp_path):
    from medsora.sample import main as sample_main

    common = ["--num", "2", "--steps", "2", "--seed", "3", "--no-progress"]
    a = sample_main(["--ckpt", str(tiny_diffusion_ckpt), "--out", str(tmp_path / "a"), *common])
    b = sample_main(["--model", str(exported), "--out", str(tmp_path / "b"), *common])
    for key in ("files", "labels", "sampler", "steps", "cfg_scale"):
        assert a[key] == b[key]
    for name in a["files"]:  # the GIF is the bit-exact record (x264 may vary by a few bytes on equal frames)
        assert (tmp_path / "a" / f"{name}.gif").read_bytes() == (tmp_path / "b" / f"{name}.gif").read_bytes()
