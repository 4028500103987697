"""Attribute- and first-frame-conditioned runs resume exactly and train the same under DDP."""
from __future__ import annotations

import torch
from lightning.pytorch import Callback

from medsora.fit import fit_stage

CONTROL = ("cond.modality=true", "cond.attributes.heart_rate.range=[40,160]",
           "cond.attributes.view.kind=label", "cond.attributes.view.values=[apical,parasternal]",
           "cond.attributes.view.dropout=0.3", "cond.first_frame=true", "cond.first_frame_dropout=0.3")


class Losses(Callback):
    def __init__(self):
        self.rows = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.rows.append((trainer.global_step, outputs["loss"].item(), tuple(batch["path"])))


def test_attribute_run_resumes_exactly(tiny_cfg):
    base = (*CONTROL, "trainer.checkpoint_every_n_steps=1", "trainer.max_steps=4")
    full = Losses()
    whole = fit_stage(tiny_cfg(*base), callbacks=[full])
    module_keys = torch.load(whole.last_ckpt, weights_only=True)["state_dict"].keys()
    assert any("cond_encoder.attributes.scalar.heart_rate" in k for k in module_keys)
    assert any("cond_encoder.attributes.label.view" in k for k in module_keys)
    crash = Losses()
    ckpt = whole.log_dir / "checkpoints" / "step=0000002.ckpt"
    resumed = fit_stage(tiny_cfg(*base, f"ckpt={ckpt}", "name=crash"), callbacks=[crash])
    assert crash.rows == full.rows[2:]
    a = torch.load(whole.last_ckpt, weights_only=True)["state_dict"]
    b = torch.load(resumed.last_ckpt, weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert "train/attr_missing/heart_rate" in whole.metrics  # missing values are counted and logged


def test_attribute_run_ddp_equals_one_process(tiny_cfg):
    common = (*CONTROL, "trainer.max_steps=2", "trainer.checkpoint_every_n_steps=100", "trainer.limit_val_batches=0")
    one = fit_stage(tiny_cfg(*common, "data.batch_size=4", "name=one"))
    two = fit_stage(tiny_cfg(*common, "data.batch_size=2", "trainer.devices=2", "trainer.strategy=ddp_spawn",
                             "name=two"))
    a = torch.load(one.last_ckpt, weights_only=True)["state_dict"]
    b = torch.load(two.last_ckpt, weights_only=True)["state_dict"]
    for name, value in a.items():
        torch.testing.assert_close(b[name], value, rtol=1e-5, atol=1e-6, msg=name)
