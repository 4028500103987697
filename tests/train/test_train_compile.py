"""``train.compile=true``: the backbone runs under torch.compile (Inductor) without graph breaks, and the
training steps equal the eager run's."""
from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Callback

from medsora.fit import fit_stage


class Losses(Callback):
    def __init__(self):
        self.losses = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(outputs["loss"].item())


@pytest.mark.slow
def test_compiled_training_steps_equal_eager(tiny_cfg):
    from torch._dynamo.utils import counters

    runs = {}
    for compile_ in (False, True):
        counters.clear()
        losses = Losses()
        result = fit_stage(tiny_cfg("trainer.max_steps=2", f"train.compile={str(compile_).lower()}",
                                    f"name=compile_{compile_}"), callbacks=[losses])
        runs[compile_] = (losses.losses, torch.load(result.last_ckpt, weights_only=True)["state_dict"])
        if compile_:
            assert counters["stats"]["unique_graphs"] >= 1  # the backbone really was compiled
            assert not counters["graph_break"], dict(counters["graph_break"])
    (eager_losses, eager_sd), (comp_losses, comp_sd) = runs[False], runs[True]
    assert len(comp_losses) == len(eager_losses) == 2
    torch.testing.assert_close(torch.tensor(comp_losses), torch.tensor(eager_losses), rtol=1e-4, atol=1e-6)
    for k, v in eager_sd.items():
        torch.testing.assert_close(comp_sd[k.replace("backbone.", "backbone._orig_mod.")] if k not in comp_sd
                                   else comp_sd[k], v, rtol=1e-3, atol=1e-5)
