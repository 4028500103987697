"""The non-finite loss guard: a NaN step changes nothing, is counted, and too many stop the run."""
from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Callback

from medsora.training.callbacks import EMA, NonFiniteLossError, NonFiniteLossGuard
from medsora.fit import fit_stage
from medsora.training.diffusion_module import DiffusionModule


class Record(Callback):
    def __init__(self):
        self.params, self.ema, self.skipped = [], [], []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.params.append(torch.nn.utils.parameters_to_vector(pl_module.parameters()).detach().clone())
        ema = next(cb for cb in trainer.callbacks if isinstance(cb, EMA)).averaged()
        self.ema.append(torch.nn.utils.parameters_to_vector(ema.parameters()).detach().clone())
        self.skipped.append(pl_module.last_skip is not None)


def _poisoned(cfg, bad_batches):
    """A module whose loss is NaN on the given (0-based) training batches."""
    module = DiffusionModule(cfg, ["endoscopy", "mri"])
    clean = module.loss_terms
    seen = []

    def loss_terms(batch, rng, train=True):
        terms = clean(batch, rng, train)
        if train:
            if len(seen) in bad_batches:
                terms["loss"] = terms["loss"] * float("nan")
            seen.append(1)
        return terms

    module.loss_terms = loss_terms
    return module


def test_nonfinite_step_is_skipped_counted_and_logged(tiny_cfg):
    cfg = tiny_cfg("trainer.max_steps=5", "trainer.max_bad_steps=3")
    rec = Record()
    result = fit_stage(cfg, callbacks=[rec], module=_poisoned(cfg, {1, 2}))
    assert rec.skipped == [False, True, True, False, False]
    # no update of the weights, nor of their average, on the skipped steps
    assert torch.equal(rec.params[0], rec.params[1]) and torch.equal(rec.params[1], rec.params[2])
    assert torch.equal(rec.ema[0], rec.ema[2])
    assert not torch.equal(rec.params[2], rec.params[3])
    assert result.metrics["train/skipped_steps"] == 2.0
    guard = NonFiniteLossGuard()
    guard.load_state_dict(torch.load(result.last_ckpt, weights_only=True)["callbacks"]["NonFiniteLossGuard"])
    assert guard.total == 2 and guard.consecutive == 0


def test_too_many_nonfinite_steps_stop_with_the_step(tiny_cfg):
    cfg = tiny_cfg("trainer.max_steps=10", "trainer.max_bad_steps=2")
    with pytest.raises(NonFiniteLossError, match=r"3 consecutive .* global step 4 .*trainer.max_bad_steps=2"):
        fit_stage(cfg, module=_poisoned(cfg, {1, 2, 3, 4, 5, 6}))


def test_ema_follows_diffusers_warmup_and_decay():
    """The average after updates w1, w2, w3 is the warm-up-weighted mix, then plain decay."""
    from medsora.training.callbacks import EMA, ema_decay_at

    model = torch.nn.Linear(1, 1, bias=False)
    ema = EMA(decay=0.5)
    avg = torch.optim.swa_utils.AveragedModel(model, use_buffers=False, **ema._kwargs)
    expected = None
    for step, w in enumerate([1.0, 3.0, -2.0, 5.0]):
        model.weight.data.fill_(w)
        avg.update_parameters(model)
        d = ema_decay_at(0.5, step)
        expected = w if expected is None else d * expected + (1 - d) * w
        assert avg.module.weight.item() == pytest.approx(expected)
    assert ema_decay_at(0.9999, 0) == pytest.approx(0.1) and ema_decay_at(0.9999, 10**6) == 0.9999
