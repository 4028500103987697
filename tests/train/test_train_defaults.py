"""Defaults for the machine: DataLoader workers from the CPUs, a step-counting progress bar, the data
order and frame rate recorded in checkpoints."""
from __future__ import annotations

import os

import torch
from lightning.pytorch import Callback

from medsora.data.datamodule import MAX_AUTO_WORKERS, default_workers
from medsora.training.stage import build_datamodule, fit_stage
from medsora.training.progress import StepProgressBar


def test_workers_default_to_the_cpus_this_process_may_use(tiny_cfg):
    cpus = len(os.sched_getaffinity(0))
    assert default_workers() == min(MAX_AUTO_WORKERS, max(1, cpus - 1))
    assert default_workers(devices_per_node=cpus) == 1
    dm = build_datamodule(tiny_cfg())  # data.num_workers: null
    assert dm.train_dataloader().num_workers == default_workers()


def test_progress_bar_counts_steps_of_a_step_limited_run(tiny_cfg, capsys):
    seen = {}

    class Read(Callback):
        def on_train_end(self, trainer, pl_module):
            bar = next(cb for cb in trainer.callbacks if isinstance(cb, StepProgressBar))
            seen.update(total=bar.train_progress_bar.total, n=bar.train_progress_bar.n,
                        title=bar.train_progress_bar.desc)

    result = fit_stage(tiny_cfg("trainer.enable_progress_bar=true", "trainer.max_steps=6"), callbacks=[Read()])
    assert seen["total"] == 6 and seen["n"] == 6 and seen["title"].startswith("Epoch 1, steps")  # 4 batches an epoch
    assert "/-2" not in capsys.readouterr().err
    state = torch.load(result.last_ckpt, weights_only=True)["VideoDataModule"]
    assert state == {"fps": None, "epoch": 1, "batches_done": 2}  # the synthetic cache records no frame rate
