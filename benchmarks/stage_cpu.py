"""CPU seconds per training step of one stage, robust to a loaded machine.

    OMP_NUM_THREADS=1 python benchmarks/stage_cpu.py vae_demo /tmp/out data.size=64 trainer.max_steps=8
    OMP_NUM_THREADS=1 python benchmarks/stage_cpu.py diffusion_demo /tmp/out vae.ckpt=… data.cache=… trainer.max_steps=8

Trains the experiment with the given overrides and prints (JSON) the mean process CPU time
(``time.process_time``: all threads) and wall time per step over the steps after 3 warm-up steps.
With one thread, CPU seconds are what a step costs on a quiet core whatever the load; this is how
the demo was sized (README, Demo). Prints only; the figures go to RESULTS.md by hand with the load.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lightning.pytorch import Callback  # noqa: E402

from medsora.config import compose  # noqa: E402
from medsora.fit import fit_stage  # noqa: E402

WARM_UP = 3


class StepClock(Callback):
    """Process CPU and wall seconds of every training batch."""

    def __init__(self):
        self.cpu, self.wall = [], []

    def on_train_batch_start(self, *args):
        self._cpu, self._wall = time.process_time(), time.perf_counter()

    def on_train_batch_end(self, *args):
        self.cpu.append(time.process_time() - self._cpu)
        self.wall.append(time.perf_counter() - self._wall)


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit("usage: python benchmarks/stage_cpu.py EXPERIMENT OUT_DIR [key=value ...]")
    experiment, out, *overrides = sys.argv[1:]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    cfg = compose(experiment, [*overrides, f"out_dir={out}", "trainer.enable_progress_bar=false"])
    clock = StepClock()
    fit_stage(cfg, callbacks=[clock])
    cpu, wall = clock.cpu[WARM_UP:], clock.wall[WARM_UP:]
    if not cpu:
        raise SystemExit(f"error: trainer.max_steps must exceed the {WARM_UP} warm-up steps")
    print(json.dumps({"experiment": experiment, "overrides": overrides, "steps": len(clock.cpu),
                      "cpu_s_per_step": sum(cpu) / len(cpu), "wall_s_per_step": sum(wall) / len(wall),
                      "total_cpu_s": time.process_time() - cpu0, "total_wall_s": time.perf_counter() - wall0}))


if __name__ == "__main__":
    main()
