"""Resuming the data order mid-epoch: the Lightning side of :mod:`medsora.data.order`."""
from __future__ import annotations

from lightning.pytorch import Callback
from torch.utils.data import DataLoader

from medsora.data.order import ResumableSampler

__all__ = ["ResumeDataOrder"]


class ResumeDataOrder(Callback):
    """On a resumed fit, skips the batches of the interrupted epoch that were already trained.

    Needs the train loader's sampler to be a :class:`~medsora.data.order.ResumableSampler`
    (what ``VideoDataModule.train_dataloader`` builds).
    """

    def on_train_start(self, trainer, pl_module) -> None:
        loader = trainer.train_dataloader
        if not isinstance(loader, DataLoader) or not isinstance(loader.sampler, ResumableSampler):
            return
        progress = trainer.fit_loop.epoch_loop.batch_progress
        # A checkpoint written at a batch end has the batch processed but not yet "completed";
        # Lightning counts it as done on restart, so must we. At an epoch's last batch the loop
        # moves on to the next epoch, which starts from its first batch.
        done = 0 if progress.is_last_batch else progress.current.processed
        if done > 0 and loader.batch_size:
            loader.sampler.skip_next(done * loader.batch_size)
