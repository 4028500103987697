"""The training progress bar: steps of a step-limited run instead of "Epoch 149/-2".

Lightning's default bar (Rich when installed) titles the bar ``Epoch e/max_epochs-1``, which
reads ``Epoch 149/-2`` for runs limited by ``trainer.max_steps`` (``max_epochs=-1``), and counts
batches of the current epoch, so it says nothing about how far the run is.
"""
from __future__ import annotations

from lightning.pytorch.callbacks import TQDMProgressBar

__all__ = ["StepProgressBar"]


class StepProgressBar(TQDMProgressBar):
    """A tqdm bar over the run's optimizer steps (``global_step/max_steps``, epoch in the title)
    when ``trainer.max_steps`` limits it; Lightning's per-epoch bar otherwise."""

    @staticmethod
    def _by_steps(trainer) -> bool:
        return int(trainer.max_steps) > 0

    def on_train_epoch_start(self, trainer, *args) -> None:
        if not self._by_steps(trainer):
            super().on_train_epoch_start(trainer, *args)
            return
        bar = self.train_progress_bar
        if bar.total != trainer.max_steps:  # first epoch of this fit (or of a resumed one)
            bar.reset(total=int(trainer.max_steps))
            bar.unit = "step"
            bar.n = int(trainer.global_step)
            bar.refresh()
        bar.set_description(f"Epoch {trainer.current_epoch}, steps")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self._by_steps(trainer):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
            return
        bar, step = self.train_progress_bar, int(trainer.global_step)
        if bar is not None and self._should_update(step, bar.total):
            bar.n = step
            bar.refresh()
            bar.set_postfix(self.get_metrics(trainer, pl_module))
