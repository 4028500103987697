"""Empty, truncated and bit-flipped checkpoints are named with their cause on every load path."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from medsora.config import compose
from medsora.fit import fit_stage
from medsora.training.checkpointing import CheckpointError, load_checkpoint
from medsora.training.diffusion_module import DiffusionModule
from medsora.vae import load_vae

CAUSES = {"empty": "empty file \\(0 bytes\\)", "truncated": "truncated", "flipped": "corrupt: .* CRC-32"}


def damage(src: Path, dst: Path, kind: str) -> Path:
    data = src.read_bytes()
    if kind == "empty":
        data = b""
    elif kind == "truncated":
        data = data[: len(data) * 2 // 3]
    else:  # one bit in the middle of the tensor data: torch.load alone would load it silently
        data = bytearray(data)
        data[len(data) // 2] ^= 0x04
        data = bytes(data)
    dst.write_bytes(data)
    return dst


def test_torch_alone_loads_a_bit_flipped_checkpoint_silently(tiny_vae_ckpt, tmp_path):
    """Why the CRC check exists: the zip reader behind torch.load does not verify checksums."""
    flipped = damage(tiny_vae_ckpt, tmp_path / "f.ckpt", "flipped")
    torch.load(flipped, weights_only=True)  # no error
    with pytest.raises(CheckpointError):
        load_checkpoint(flipped)


@pytest.mark.parametrize("kind", sorted(CAUSES))
def test_every_load_path_names_the_file_and_the_cause(kind, tiny_vae_ckpt, tiny_diffusion_ckpt, tiny_cfg, tmp_path):
    vae = damage(tiny_vae_ckpt, tmp_path / "vae.ckpt", kind)
    diff = damage(tiny_diffusion_ckpt, tmp_path / "diff.ckpt", kind)
    for load in (lambda: load_checkpoint(diff), lambda: load_vae(vae), lambda: DiffusionModule.from_checkpoint(str(diff)),
                 lambda: DiffusionModule.from_checkpoint(str(tiny_diffusion_ckpt), overrides={"vae": {"ckpt": str(vae)}})):
        with pytest.raises(CheckpointError, match=f"{tmp_path}/(vae|diff).ckpt: {CAUSES[kind]}"):
            load()
    # resuming a training run and initialising from another run read checkpoints too
    run = fit_stage(tiny_cfg("trainer.max_steps=1", "name=src"))
    bad = damage(run.last_ckpt, tmp_path / "run.ckpt", kind)
    with pytest.raises(CheckpointError, match=f"run.ckpt: {CAUSES[kind]}"):
        fit_stage(tiny_cfg("trainer.max_steps=2", f"ckpt={bad}", "name=resume"))
    with pytest.raises(CheckpointError, match=f"run.ckpt: {CAUSES[kind]}"):
        fit_stage(tiny_cfg("trainer.max_steps=2", f"train.init_from={bad}", "name=init"))


def _cli(module: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), **(env or {})})


def test_clis_report_bad_checkpoints_in_one_line_and_debug_shows_the_traceback(tiny_diffusion_ckpt, tmp_path,
                                                                             run_overrides):
    bad = damage(tiny_diffusion_ckpt, tmp_path / "diff.ckpt", "truncated")
    done = _cli("medsora.sample", "--ckpt", str(bad), "--out", str(tmp_path / "s"), "--num", "1")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"medsora.sample: error: {bad}: truncated or not a PyTorch checkpoint ({bad.stat().st_size} bytes, File is "
        "not a zip file); use an earlier checkpoint (--debug shows the traceback)"]
    assert not (tmp_path / "s").exists()

    other = tmp_path / "other.ckpt"  # a checkpoint of another program: pickled Python objects
    torch.save({"args": argparse.Namespace(lr=1.0)}, other)
    cfg = compose("diffusion_demo", [*run_overrides(tmp_path, other), "name=x"])
    args = ["experiment=diffusion_demo", *run_overrides(tmp_path, other), "name=x"]
    done = _cli("medsora.fit", *args)
    lines = [line for line in done.stderr.splitlines() if "error:" in line or "Traceback" in line]
    assert done.returncode == 2 and lines == [lines[0]] and "Traceback" not in done.stderr
    assert f"medsora.fit: error: {other}: not a MedSora checkpoint" in lines[0]
    assert not list((Path(cfg.out_dir) / "x").glob("version_*"))  # the failed start left no folder
    done = _cli("medsora.fit", *args, "--debug")
    assert done.returncode == 1 and "Traceback" in done.stderr and "CheckpointError" in done.stderr
