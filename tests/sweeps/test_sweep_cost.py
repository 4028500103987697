"""What a sweep's children cost: CPU seconds from the kernel's accounting, per-step CPU time, thread split."""
from __future__ import annotations

import os
import resource
import sys
import time
from types import SimpleNamespace

import pytest
import torch

from medsora.sweeps.children import run_child

BUSY = "import time\nend = time.process_time() + {0}\nwhile time.process_time() < end: pass\n"


def test_run_child_reports_exit_status_cpu_time_and_memory(tmp_path):
    with (tmp_path / "log").open("w") as log:
        res = run_child([sys.executable, "-c", BUSY.format(0.6) + "raise SystemExit(3)"], log)
    assert res.returncode == 3
    assert 0.55 <= res.cpu_s < 5.0  # the busy loop's 0.6 s plus the interpreter's start-up
    # ru_maxrss counts what the child shared with this process between fork and exec (Linux), so the bound
    # is relative to this process's own peak: a large test process (late in a random-order run) is not a failure.
    own_peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert 1.0 < res.max_rss_mb < own_peak_mb + 2000.0


def test_run_child_counts_its_descendants(tmp_path):
    """Data-loader workers are the child's children: their CPU time belongs to the variant."""
    code = ("import subprocess, sys\n"
            f"subprocess.run([sys.executable, '-c', {BUSY.format(0.5)!r}], check=True)\n")
    with (tmp_path / "log").open("w") as log:
        res = run_child([sys.executable, "-c", code], log)
    assert res.returncode == 0 and res.cpu_s >= 0.45


def test_throughput_logs_cpu_time_per_step():
    from medsora.training.callbacks import Throughput

    logged = {}
    cb = Throughput(lambda batch: 2)
    trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cpu")), global_step=0,
                              log_every_n_steps=2)
    module = SimpleNamespace(log_dict=lambda metrics, **kw: logged.update(metrics))
    for step in (1, 2):
        trainer.global_step = step
        cb.on_train_batch_start(trainer, module, None, step)
        end = time.process_time() + 0.2
        while time.process_time() < end:
            pass
        time.sleep(0.1)  # wall time only
        cb.on_train_batch_end(trainer, module, None, None, step)
    assert logged["perf/step_cpu_s"] == pytest.approx(0.2, abs=0.05)
    assert logged["perf/step_time_s"] >= logged["perf/step_cpu_s"] + 0.09


def test_parallel_cpu_jobs_split_the_threads(tmp_path, monkeypatch):
    from medsora.sweeps import runner
    from medsora.sweeps.spec import load_sweep

    root = tmp_path / "configs"
    (root / "experiment").mkdir(parents=True)
    (root / "experiment" / "base.yaml").write_text("name: base\ndata:\n  root: /videos\n")
    monkeypatch.setenv("MEDSORA_CONFIG_DIR", str(root))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    (tmp_path / "s.yaml").write_text("base: base\nvariants: {a: [], b: [model.depth=1]}\n")
    seen = {}

    def fake_variant(spec_, variant, out_dir, params, extra=(), env=None):
        seen[variant.name] = dict(env or {})
        return {"variant": variant.name, "status": "done", "cpu_s": 2.5}

    monkeypatch.setattr(runner, "run_variant", fake_variant)
    monkeypatch.setattr(runner, "backbone_cost", lambda cfg: {"params_m": 0.001, "gflops": 0.0})
    runner.run_sweep(load_sweep(tmp_path / "s.yaml"), tmp_path / "out", jobs=2)
    assert seen["a"]["OMP_NUM_THREADS"] == "4" and seen["b"]["OMP_NUM_THREADS"] == "4"
    assert (tmp_path / "out" / "results.md").read_text().rstrip().endswith(
        "variants 5 s, total 5 s = 0.1 CPU-min (2 at a time).")

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the user's setting wins
    runner.run_sweep(load_sweep(tmp_path / "s.yaml"), tmp_path / "out2", jobs=2)
    assert "OMP_NUM_THREADS" not in seen["a"]
