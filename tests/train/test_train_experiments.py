"""Every experiment in configs/experiment/ composes and takes real optimisation steps (tiny sizes)."""
from __future__ import annotations

import math

import pytest
import torch
from lightning.pytorch import Callback

from medsora.config import compose, list_configs
from medsora.fit import fit_stage


class Watch(Callback):
    """Parameters at the start and end of training, and every loss."""

    def __init__(self):
        self.start, self.end, self.losses = None, None, []

    @staticmethod
    def _vector(module):
        return torch.nn.utils.parameters_to_vector([p for p in module.parameters() if p.requires_grad]).detach().clone()

    def on_train_start(self, trainer, pl_module):
        self.start = self._vector(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))

    def on_train_end(self, trainer, pl_module):
        self.end = self._vector(pl_module)


# experiment=demo (stage: demo) chains vae_demo and diffusion_demo: tests/train/test_train_demo_quality.py
@pytest.mark.parametrize("experiment", [e for e in list_configs("experiment") if e != "demo"])
def test_experiment_takes_optimisation_steps(experiment, tiny_vae_ckpt, tiny_t5_dir, tmp_path, run_overrides):
    cfg = compose(experiment, run_overrides(tmp_path, tiny_vae_ckpt, tiny_t5_dir))
    watch = Watch()
    result = fit_stage(cfg, callbacks=[watch])
    assert len(watch.losses) == 2 and all(math.isfinite(x) for x in watch.losses)
    assert not torch.equal(watch.start, watch.end)  # the weights moved
    assert torch.load(result.last_ckpt, weights_only=True)["global_step"] == 2
