"""Exact resume: the steps after a restart are the steps of the uninterrupted run."""
from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Callback

from medsora.fit import fit_stage


class Losses(Callback):
    """Loss, batch paths and step of every training batch."""

    def __init__(self):
        self.rows = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.rows.append((trainer.global_step, outputs["loss"].item(), tuple(batch["path"])))


def _state(ckpt):
    state = torch.load(ckpt, weights_only=True)
    return state["current_model_state"], state["state_dict"], state["optimizer_states"][0]["state"]


OBJECTIVES = {"ddpm": (), "flow_matching": ("diffusion=flow_matching", "diffusion.sample_steps=4")}


@pytest.mark.parametrize("objective", list(OBJECTIVES))
def test_resume_mid_epoch_and_after_the_end_equals_uninterrupted(tiny_cfg, objective):
    # 8 train clips, batch 2: 4 steps per epoch; a checkpoint after every step.
    base = ("trainer.checkpoint_every_n_steps=1", "train.warmup_steps=4", *OBJECTIVES[objective])
    full = Losses()
    whole = fit_stage(tiny_cfg(*base, "trainer.max_steps=7"), callbacks=[full])

    # a crash after step 3 (mid-epoch) or 4 (an epoch's last batch): restart from its checkpoint
    for step in (3, 4):
        crash = Losses()
        ckpt = whole.log_dir / "checkpoints" / f"step={step:07d}.ckpt"
        resumed = fit_stage(tiny_cfg(*base, "trainer.max_steps=7", f"ckpt={ckpt}", f"name=crash{step}"),
                            callbacks=[crash])
        assert [r[0] for r in crash.rows] == list(range(step + 1, 8))
        assert crash.rows == full.rows[step:]  # same batches in the same order, same losses, bit for bit

    # a finished 5-step run continued to 7 steps with ckpt=last (same run name: same version folder)
    first = Losses()
    short = fit_stage(tiny_cfg(*base, "trainer.max_steps=5", "name=cont"), callbacks=[first])
    more = Losses()
    cont = fit_stage(tiny_cfg(*base, "trainer.max_steps=7", "name=cont", "ckpt=last"), callbacks=[more])
    assert cont.log_dir == short.log_dir
    assert first.rows + more.rows == full.rows

    for other in (resumed, cont):
        for a, b in zip(_state(whole.last_ckpt)[:2], _state(other.last_ckpt)[:2]):
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # weights and EMA
        opt_a, opt_b = _state(whole.last_ckpt)[2], _state(other.last_ckpt)[2]
        assert all(torch.equal(opt_a[i]["exp_avg_sq"], opt_b[i]["exp_avg_sq"]) for i in opt_a)
