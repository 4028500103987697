"""``train.lr_schedule``: linear warm-up, then constant or a half cosine to ``min_lr_ratio`` at max_steps."""
from __future__ import annotations

import math

import pytest
from lightning.pytorch import Callback

from medsora.config import ConfigError
from medsora.fit import fit_stage
from medsora.training.module_base import warmup_factor


def test_warmup_then_cosine_closed_form():
    f = [warmup_factor(s, steps=2, decay_to=10, floor=0.1) for s in range(12)]
    assert f[:2] == [0.5, 1.0]
    assert f[2] == pytest.approx(1.0)  # the decay starts where the warm-up ends
    assert f[6] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))  # half way: (1 + floor) / 2
    assert f[10] == pytest.approx(0.1) and f[11] == pytest.approx(0.1)  # held at the floor after max_steps
    assert all(a >= b for a, b in zip(f[1:], f[2:]))
    assert [warmup_factor(s, steps=2) for s in range(5)] == [0.5, 1.0, 1.0, 1.0, 1.0]  # constant: unchanged


class Rates(Callback):
    def __init__(self):
        self.rows = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.rows.append((trainer.global_step, trainer.optimizers[0].param_groups[0]["lr"]))


def test_cosine_schedule_is_applied_per_step_and_resumes_exactly(tiny_cfg):
    base = ("train.lr_schedule=cosine", "train.min_lr_ratio=0.2", "train.warmup_steps=2", "train.lr=1e-3",
            "trainer.max_steps=6", "trainer.checkpoint_every_n_steps=1")
    full = Rates()
    whole = fit_stage(tiny_cfg(*base), callbacks=[full])
    expected = [1e-3 * warmup_factor(s, 2, 6, 0.2) for s in range(6)]
    assert [r[0] for r in full.rows] == list(range(6))
    assert [r[1] for r in full.rows] == pytest.approx(expected)
    resumed = Rates()
    fit_stage(tiny_cfg(*base, f"ckpt={whole.log_dir / 'checkpoints' / 'step=0000003.ckpt'}", "name=again"),
              callbacks=[resumed])
    assert [r[0] for r in resumed.rows] == [3, 4, 5]
    assert [r[1] for r in resumed.rows] == pytest.approx([r[1] for r in full.rows[3:]], rel=1e-12)


def test_cosine_needs_a_step_limit(tiny_cfg):
    with pytest.raises(ConfigError, match="train.lr_schedule"):
        tiny_cfg("train.lr_schedule=cosine", "trainer.max_steps=-1", "trainer.max_epochs=1")
