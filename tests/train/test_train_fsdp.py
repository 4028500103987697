"""trainer.strategy=fsdp (sharded per MedSoraLayer, GPU only) and bf16-mixed precision, end to end."""
from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Callback

from medsora.config import ConfigError
from medsora.fit import fit_stage
from medsora.training.trainer_factory import build_strategy

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="FSDP needs CUDA (torch's FSDP has no CPU backend)")


class Losses(Callback):
    def __init__(self):
        self.rows = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.rows.append((trainer.global_step, outputs["loss"].item()))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU error")
def test_fsdp_on_the_cpu_is_refused_naming_the_key(tiny_cfg):
    with pytest.raises(ConfigError, match="trainer.strategy=fsdp needs CUDA"):
        build_strategy(tiny_cfg("trainer.strategy=fsdp", "train.ema=false"))
    with pytest.raises(ConfigError, match="train.ema=false"):
        build_strategy(tiny_cfg("trainer.strategy=fsdp"))


@pytest.mark.gpu
@needs_gpu
def test_fsdp_wraps_each_layer_and_resumes_exactly(tiny_cfg):
    from torch.distributed.fsdp import FullyShardedDataParallel

    from medsora.backbone.layers import MedSoraLayer

    gpu = ("trainer.accelerator=gpu", "trainer.devices=1", "trainer.strategy=fsdp", "train.ema=false",
           "trainer.checkpoint_every_n_steps=2", "model.depth=2", "trainer.precision=bf16-mixed")
    strategy = build_strategy(tiny_cfg(*gpu))
    assert "auto_wrap_policy" in strategy.kwargs  # Lightning turns {MedSoraLayer} into a ModuleWrapPolicy
    full, crash = Losses(), Losses()

    class Wrapped(Callback):
        def on_train_start(self, trainer, pl_module):
            self.layers = sum(isinstance(m, FullyShardedDataParallel) and isinstance(m.module, MedSoraLayer)
                              for m in pl_module.modules())
    wrapped = Wrapped()
    whole = fit_stage(tiny_cfg(*gpu, "trainer.max_steps=4", "name=whole"), callbacks=[full, wrapped])
    assert wrapped.layers == 2
    ckpt = whole.log_dir / "checkpoints" / "step=0000002.ckpt"
    resumed = fit_stage(tiny_cfg(*gpu, "trainer.max_steps=4", f"ckpt={ckpt}", "name=resumed"), callbacks=[crash])
    assert crash.rows == full.rows[2:]
    a = torch.load(whole.last_ckpt, weights_only=True)["state_dict"]
    b = torch.load(resumed.last_ckpt, weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_bf16_mixed_training_runs_end_to_end_on_the_cpu(tiny_cfg):
    """bf16 autocast around fp32 weights: finite losses, fp32 checkpoints; the scans accumulate in fp32."""
    losses = Losses()
    result = fit_stage(tiny_cfg("trainer.precision=bf16-mixed", "trainer.max_steps=3", "name=bf16"),
                       callbacks=[losses])
    assert len(losses.rows) == 3 and all(torch.isfinite(torch.tensor(v)) for _, v in losses.rows)
    state = torch.load(result.last_ckpt, weights_only=True)["state_dict"]
    assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())
