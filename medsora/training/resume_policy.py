"""What may change when a run resumes (``ckpt=...``), and applying the learning rate when it does.

A checkpoint restores the model, the optimiser (its learning rate included), the schedule and the
data order, so most settings given on a resume would be silently ignored while the new checkpoint
recorded them as used. The policy, one list: the keys of :data:`APPLIED_ON_RESUME` take effect
(run length, logging and checkpoint cadence, hardware, where files now live, implementation
switches that compute the same model, and the learning rate, which :class:`ResumeLearningRate`
writes into the restored optimiser and schedule); any other difference is refused before anything
starts, naming each key with its checkpoint and current values. A checkpoint's recorded config is
then always what the run really used.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable

from lightning.pytorch import Callback

from medsora.config import ConfigError

__all__ = ["APPLIED_ON_RESUME", "changed_settings", "check_resume", "ResumeLearningRate"]

log = logging.getLogger("medsora.resume")

APPLIED_ON_RESUME = frozenset({
    # the run itself and where it lives
    "ckpt", "out_dir", "name",
    # how long it runs, what it logs and saves
    "trainer.max_steps", "trainer.max_epochs", "trainer.log_every_n_steps", "trainer.checkpoint_every_n_steps",
    "trainer.sample_every_n_steps", "trainer.val_check_interval", "trainer.limit_val_batches",
    "trainer.enable_progress_bar", "trainer.max_bad_steps", "vae.log_videos",
    # the hardware it runs on
    "trainer.accelerator", "trainer.devices", "trainer.num_nodes", "trainer.strategy", "data.num_workers",
    # files that moved (a different VAE is refused by its fingerprint, medsora.training.vae_record)
    "data.root", "data.cache", "vae.ckpt", "vae.pretrained", "vae.lpips_weights", "cond.text_encoder",
    "align.teacher.weights", "align.teacher.encoder", "train.init_from",
    # the same model computed another way
    "model.scan_impl", "model.grad_checkpointing", "vae.grad_checkpointing", "train.compile", "align.teacher.chunk",
    # written into the restored optimiser by ResumeLearningRate
    "train.lr", "vae.lr",
})


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: tree}


def changed_settings(saved: dict, current: dict) -> dict[str, tuple[Any, Any]]:
    """``{key: (checkpoint value, current value)}`` for every leaf that differs.

    Keys the checkpoint does not know (added to the schema since) are not differences.
    """
    old, new = _flatten(saved), _flatten(current)
    return {k: (old[k], new[k]) for k in sorted(new) if k in old and old[k] != new[k]}


def check_resume(ckpt: Path, saved_cfg: dict, current_cfg: dict) -> dict[str, tuple[Any, Any]]:
    """Refuse a resume whose settings differ outside :data:`APPLIED_ON_RESUME`.

    Returns:
        The applied differences (logged), e.g. ``{"train.lr": (1e-4, 5.0)}``.
    Raises:
        ConfigError: naming every refused key with its checkpoint and current values.
    """
    changed = changed_settings(saved_cfg, current_cfg)
    refused = {k: v for k, v in changed.items() if k not in APPLIED_ON_RESUME}
    if refused:
        listed = ", ".join(f"{k} (checkpoint {a!r}, now {b!r})" for k, (a, b) in refused.items())
        raise ConfigError(
            f"ckpt={ckpt}: a resumed run keeps its settings, but these differ from the checkpoint's: {listed}. "
            "Drop them to resume, or start a new run from these weights with train.init_from=CKPT"
        )
    for key, (a, b) in changed.items():
        if key not in ("ckpt",):
            log.info("resume: %s changed from %r to %r (applied)", key, a, b)
    return changed


class ResumeLearningRate(Callback):
    """Writes a learning rate changed on resume into the restored optimiser and schedule.

    Lightning restores the optimiser's ``lr`` and the scheduler's ``base_lrs`` from the checkpoint;
    here both are set to ``lr`` and each group's current rate recomputed by its ``LambdaLR`` factor
    (warm-up), so the run continues at the new rate from its current position in the schedule.
    """

    def __init__(self, lr: float):
        self.lr = float(lr)

    def on_train_start(self, trainer, pl_module) -> None:
        scheduled: set[int] = set()
        for config in trainer.lr_scheduler_configs:
            sched = config.scheduler
            sched.base_lrs = [self.lr for _ in sched.base_lrs]
            factors: Iterable = getattr(sched, "lr_lambdas", [lambda _: 1.0] * len(sched.base_lrs))
            for group, base, factor in zip(sched.optimizer.param_groups, sched.base_lrs, factors):
                group["initial_lr"] = base
                group["lr"] = base * factor(sched.last_epoch)
                scheduled.add(id(group))
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                if id(group) not in scheduled:
                    group["lr"] = self.lr
