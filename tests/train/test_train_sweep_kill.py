"""A sweep killed with SIGKILL takes its training child with it, and a rerun resumes the unfinished variant."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from medsora.config import config_dir

REPO = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")  # a zombie waiting for init to reap it is dead


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _wait_for(condition, seconds: float, what: str):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_a_killed_sweep_leaves_no_orphan_and_resumes_its_variant(cache_dir, tmp_path):
    configs = shutil.copytree(config_dir(), tmp_path / "configs")
    (configs / "experiment" / "bare.yaml").write_text("name: bare\n")  # schema defaults + the sweep's overrides
    overrides = [f"data.cache={cache_dir}", "data.root=demo", "data.size=32", "data.num_frames=5", "data.batch_size=2",
                 "model=tiny", "model.depth=1", "model.hidden=32", "model.projector_hidden=16", "model.window=2",
                 "model.scan_impl=torch", "vae.latent_channels=4", "align.target=flow", "align.flow_cells=1",
                 "align.teacher.weights=random", "trainer=cpu", "trainer.max_steps=400", "trainer.log_every_n_steps=1",
                 "trainer.enable_progress_bar=false", "trainer.checkpoint_every_n_steps=2", "train.ema_decay=0.9"]
    sweep = tmp_path / "tiny.yaml"
    sweep.write_text("base: bare\noverrides: " + json.dumps(overrides) + "\nvariants:\n  v: []\n")
    out = tmp_path / "out"
    env = {**os.environ, "MEDSORA_CONFIG_DIR": str(configs), "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "medsora.sweep", str(sweep), "--out", str(out)]
    parent = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = out / "v" / "v" / "version_0" / "checkpoints"
    try:
        _wait_for(lambda: list(ckpts.glob("step=*.ckpt")), 400, "the variant's first checkpoint")
        child = _wait_for(lambda: _children(parent.pid), 10, "the training child")[0]
        assert "medsora.fit" in Path(f"/proc/{child}/cmdline").read_text()
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    _wait_for(lambda: not _alive(child), 20, f"training child {child} to die with the sweep")

    done = max(int(re.search(r"step=(\d+)", p.name).group(1)) for p in ckpts.glob("step=*.ckpt"))
    finish = done + 2
    rerun = subprocess.run([*command, f"trainer.max_steps={finish}"], env=env, capture_output=True, text=True,
                           timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    log = (out / "v" / "train.log").read_text()
    assert log.count("$ ") == 2 and "ckpt=last" not in log.split("$ ")[1] and "ckpt=last" in log.split("$ ")[2]
    assert torch.load(ckpts / "last.ckpt", weights_only=True)["global_step"] == finish
    assert json.loads((out / "v" / "result.json").read_text())["status"] == "done"
