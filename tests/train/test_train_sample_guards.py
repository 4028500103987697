"""Sampling refuses what would silently produce garbage: another VAE, unknown conditions, bad values."""
from __future__ import annotations

import argparse
import shutil

import pytest
import torch

from medsora.fit import fit_stage
from medsora.sample import check_args, main as sample_main
from medsora.training.diffusion_module import DiffusionModule
from medsora.training.vae_record import RECORD_KEY, VAEMismatchError


@pytest.fixture(scope="module")
def retrained_vae(tiny_vae_ckpt, tmp_path_factory):
    """The same VAE file with one weight changed: what a retrained or overwritten VAE looks like."""
    state = torch.load(tiny_vae_ckpt, weights_only=True)
    name = next(k for k in state["state_dict"] if k.startswith("vae.") and k.endswith("weight"))
    state["state_dict"][name] = state["state_dict"][name] + 0.01
    path = tmp_path_factory.mktemp("retrained") / "vae.ckpt"
    torch.save(state, path)
    return path


def test_the_checkpoint_records_the_vae_and_refuses_another(tiny_diffusion_ckpt, tiny_vae_ckpt, retrained_vae):
    record = torch.load(tiny_diffusion_ckpt, weights_only=True)[RECORD_KEY]
    assert len(record["vae_fingerprint"]) == 16 and record["scaling_factor"] > 0
    copy = retrained_vae.parent / "same.ckpt"
    shutil.copy(tiny_vae_ckpt, copy)  # the same VAE elsewhere is accepted
    DiffusionModule.from_checkpoint(str(tiny_diffusion_ckpt), overrides={"vae": {"ckpt": str(copy)}})
    with pytest.raises(VAEMismatchError, match=f"{retrained_vae} \\(VAE fingerprint [0-9a-f]{{16}}\\) is not the VAE "
                                               f".* trained with \\(fingerprint {record['vae_fingerprint']}"):
        DiffusionModule.from_checkpoint(str(tiny_diffusion_ckpt), overrides={"vae": {"ckpt": str(retrained_vae)}})
    forced = DiffusionModule.from_checkpoint(str(tiny_diffusion_ckpt), overrides={"vae": {"ckpt": str(retrained_vae)}},
                                             force_vae=True)
    assert forced.scaling_factor == record["scaling_factor"]


def test_resuming_with_another_vae_is_refused(tiny_diffusion_ckpt, retrained_vae):
    """Lightning calls on_load_checkpoint with the checkpoint being resumed: the module built with the new
    vae.ckpt (another fingerprint) refuses it."""
    module = DiffusionModule.from_checkpoint(str(tiny_diffusion_ckpt), overrides={"vae": {"ckpt": str(retrained_vae)}},
                                             force_vae=True)
    with pytest.raises(VAEMismatchError, match="is not the VAE the resumed checkpoint was trained with"):
        module.on_load_checkpoint(torch.load(tiny_diffusion_ckpt, weights_only=True))


def test_sampling_needs_no_encode_cache(tiny_cfg, cache_dir, tiny_vae_ckpt, tmp_path):
    cache = shutil.copytree(cache_dir, tmp_path / "cache")
    run = fit_stage(tiny_cfg("trainer.max_steps=1", f"data.cache={cache}"))
    shutil.rmtree(cache)  # the training cache is gone (moved, deleted, another machine)
    module = DiffusionModule.from_checkpoint(str(run.last_ckpt), overrides={"vae": {"ckpt": str(tiny_vae_ckpt)}})
    assert module.scaling_factor == 1.0  # the cache's scale, read from the checkpoint's record
    assert module.generate(1, steps=2).shape == (1, 3, 5, 32, 32)


def test_conditions_the_model_was_not_trained_on_are_refused_naming_what_it_has(tiny_diffusion_ckpt, tmp_path):
    module = DiffusionModule.from_checkpoint(str(tiny_diffusion_ckpt))  # modality-conditioned, no text
    with pytest.raises(ValueError, match=r"--prompt: this model is not conditioned on free text; it is conditioned "
                                         r"on modality \(endoscopy, .*\); give --modality instead"):
        module.generate(1, prompts=["a polyp"], steps=2)
    with pytest.raises(ValueError, match="--negative-prompt: .* conditioned on modality"):
        sample_main(["--ckpt", str(tiny_diffusion_ckpt), "--out", str(tmp_path / "s"), "--negative-prompt", "blur"])
    assert not (tmp_path / "s").exists()  # refused before any work


def _args(tmp_path, **changes) -> argparse.Namespace:
    ckpt = tmp_path / "m.ckpt"
    ckpt.write_bytes(b"x")
    base = dict(ckpt=str(ckpt), out=str(tmp_path / "out"), num=2, batch_size=8, seed=0, steps=None, fps=8, cfg=None,
                vae=None)
    return argparse.Namespace(**{**base, **changes})


@pytest.mark.parametrize("change, message", [
    ({"cfg": float("nan")}, "--cfg = nan: the guidance scale must be a finite number"),
    ({"cfg": float("inf")}, "--cfg = inf"),
    ({"fps": 0}, "--fps = 0: must be >= 1"),
    ({"steps": 0}, "--steps = 0: must be >= 1"),
    ({"num": -3}, "--num = -3: must be >= 1"),
    ({"batch_size": 0}, "--batch-size = 0: must be >= 1"),
    ({"vae": "/no/such/vae.ckpt"}, "--vae /no/such/vae.ckpt: no such file"),
])
def test_bad_sample_values_are_refused_before_any_work(tmp_path, change, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message.replace("(", "\\(")):
        check_args(_args(tmp_path, **change))
    check_args(_args(tmp_path))  # the defaults pass


def test_out_naming_an_existing_file_is_refused(tmp_path):
    (tmp_path / "out").write_text("not a folder")
    with pytest.raises(ValueError, match=f"--out {tmp_path / 'out'}: is a file; give a folder"):
        check_args(_args(tmp_path))
