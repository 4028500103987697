"""``last.ckpt`` is always the final state; ``ckpt=last`` is the newest readable state wherever the run folder lives."""
from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback

from medsora.config import ConfigError, compose
from medsora.fit import fit_stage


def _step(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])


def _weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["current_model_state"]


@pytest.mark.parametrize("max_steps", [3, 5])
def test_last_ckpt_holds_the_final_step_of_a_diffusion_run(tiny_cfg, max_steps):
    result = fit_stage(tiny_cfg(f"trainer.max_steps={max_steps}", "trainer.checkpoint_every_n_steps=2"))
    assert result.last_ckpt.name == "last.ckpt" and _step(result.last_ckpt) == max_steps
    steps = sorted(_step(p) for p in result.log_dir.glob("checkpoints/step=*.ckpt"))
    assert steps == [*range(2, max_steps, 2), max_steps]  # the cadence, plus the final step
    assert not list(result.log_dir.glob("checkpoints/*-v*.ckpt"))


def test_last_ckpt_holds_the_final_step_of_a_vae_run(tmp_path, run_overrides):
    cfg = compose(overrides=["stage=vae", "name=vae", *run_overrides(tmp_path), "train.ema=false",
                             "trainer.max_steps=3", "trainer.checkpoint_every_n_steps=2"])
    result = fit_stage(cfg)
    assert _step(result.last_ckpt) == 3
    assert sorted(_step(p) for p in result.log_dir.glob("checkpoints/step=*.ckpt")) == [2, 3]


def test_a_moved_run_folder_resumes_twice_and_matches_the_uninterrupted_run(tiny_cfg, tmp_path):
    every = "trainer.checkpoint_every_n_steps=2"
    whole = fit_stage(tiny_cfg("trainer.max_steps=6", every, "name=whole"))

    first = fit_stage(tiny_cfg("trainer.max_steps=2", every, "name=m", f"out_dir={tmp_path / 'a'}"))
    shutil.move(str(tmp_path / "a"), str(tmp_path / "b"))  # the whole out_dir moves (e.g. to another disk)
    for steps in (4, 6):
        again = fit_stage(tiny_cfg(f"trainer.max_steps={steps}", every, "name=m", f"out_dir={tmp_path / 'b'}",
                                   "ckpt=last"))
        assert again.log_dir.name == first.log_dir.name and _step(again.last_ckpt) == steps
    names = sorted(p.name for p in again.log_dir.glob("checkpoints/*.ckpt"))
    assert names == ["last.ckpt", "step=0000002.ckpt", "step=0000004.ckpt", "step=0000006.ckpt"]  # no last-v1
    a, b = _weights(whole.last_ckpt), _weights(again.last_ckpt)
    assert all(torch.equal(a[k], b[k]) for k in a)


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))


def test_ckpt_last_falls_back_to_the_newest_readable_step_and_says_so(tiny_cfg, caplog):
    every = "trainer.checkpoint_every_n_steps=2"
    run = fit_stage(tiny_cfg("trainer.max_steps=4", every))
    ckpts = run.log_dir / "checkpoints"
    _flip_byte(ckpts / "last.ckpt", (ckpts / "last.ckpt").stat().st_size // 2)  # a bit flip inside the weights
    (ckpts / "step=0000004.ckpt").write_bytes((ckpts / "step=0000004.ckpt").read_bytes()[:5000])  # truncated
    with caplog.at_level(logging.WARNING, logger="medsora.checkpoint"):
        resumed = fit_stage(tiny_cfg("trainer.max_steps=5", every, "ckpt=last"))
    text = caplog.text
    assert "last.ckpt: corrupt" in text and "CRC-32" in text
    assert "step=0000004.ckpt: truncated" in text
    assert "resuming from" in text and "step=0000002.ckpt (step 2)" in text
    assert _step(resumed.last_ckpt) == 5


def test_a_checkpoint_write_killed_with_sigkill_leaves_a_temporary_that_the_next_start_removes(tiny_cfg, tmp_path):
    run = fit_stage(tiny_cfg("trainer.max_steps=2", "trainer.checkpoint_every_n_steps=2"))
    ckpts = run.log_dir / "checkpoints"
    # a real writer, killed while torch.save is in the middle of the file
    writer = subprocess.Popen([sys.executable, "-c", (
        "import time, torch\n"
        "from medsora.training.checkpointing import atomic_torch_save\n"
        "class Slow:\n"
        "    def __reduce__(self):\n"
        "        time.sleep(60)\n"
        "        return (int, ())\n"
        f"atomic_torch_save({{'w': torch.zeros(1000), 'slow': Slow()}}, {str(ckpts / 'last.ckpt')!r})\n")])
    deadline = time.time() + 60
    while not list(ckpts.glob(".last.ckpt.*.tmp")) and time.time() < deadline:
        time.sleep(0.2)
    writer.kill()
    writer.wait()
    assert len(list(ckpts.glob(".last.ckpt.*.tmp"))) == 1 and _step(ckpts / "last.ckpt") == 2
    resumed = fit_stage(tiny_cfg("trainer.max_steps=3", "ckpt=last"))
    assert not list(ckpts.glob("*.tmp")) and _step(resumed.last_ckpt) == 3


def test_a_changed_learning_rate_is_applied_on_resume_and_other_changes_are_refused(tiny_cfg):
    run = fit_stage(tiny_cfg("trainer.max_steps=2"))
    resumed = fit_stage(tiny_cfg("trainer.max_steps=3", "ckpt=last", "train.lr=5.0"))
    state = torch.load(resumed.last_ckpt, map_location="cpu", weights_only=True)
    assert state["hyper_parameters"]["cfg"]["train"]["lr"] == 5.0
    assert [g["lr"] for g in state["optimizer_states"][0]["param_groups"]] == [5.0]  # what really ran
    with pytest.raises(ConfigError, match=r"model\.hidden \(checkpoint 32, now 64\).*train\.warmup_steps"):
        fit_stage(tiny_cfg("trainer.max_steps=4", "ckpt=last", "model.hidden=64", "train.warmup_steps=3"))
    assert sorted(p.name for p in run.log_dir.parent.iterdir()) == ["version_0"]


class FailsAtStart(Callback):
    """A start that fails after the logger wrote its folder (a data, memory or device error at the first step)."""

    def on_train_start(self, trainer, pl_module):
        self.folder_existed = Path(trainer.logger.log_dir).is_dir()
        raise RuntimeError("failed before the first step")


def test_a_failed_start_leaves_no_empty_version_folder(tiny_cfg):
    cfg = tiny_cfg("trainer.max_steps=2")
    failing = FailsAtStart()
    with pytest.raises(RuntimeError, match="before the first step"):
        fit_stage(cfg, callbacks=[failing])
    assert failing.folder_existed and not list((Path(cfg.out_dir) / cfg.name).glob("version_*"))
    run = fit_stage(cfg)  # the next start is version_0, not version_1
    assert run.log_dir.name == "version_0"
