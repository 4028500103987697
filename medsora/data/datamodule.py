"""The Lightning DataModule: a data folder (or the demo set, or an encode cache) -> batches.

The one data path of the project: ``trainer.fit(module, datamodule=dm)`` trains both stages
from these loaders, and the data tests and ``benchmarks/data.py`` exercise the same ones.

Batches: {"video": B×3×F×H×W float32 in [-1, 1], "caption": list[str],
"modality": list[str], "path": list[str] (relative to the data root), "clip": B (which clip
of its video), "fps": B (the clip's frame rate, 0 = unknown)}. With ``data.cache`` set,
batches are those of :class:`medsora.data.cache.CacheDataset` (latent statistics and flow
targets) instead.
"""
from __future__ import annotations

import hashlib
import logging
import warnings
from pathlib import Path
from typing import Optional, Sequence

import lightning as L
import torch
from lightning.fabric.utilities.data import suggested_max_num_workers
from torch.utils.data import DataLoader, Dataset

from medsora.data.dataset import ClipSettings, VideoClipDataset
from medsora.data.manifest import ManifestError, VideoEntry, load_entries
from medsora.data.order import ResumableSampler, SeededItems
from medsora.data.summary import summarise_clips
from medsora.data.table import SourceTable

__all__ = ["VideoDataModule", "resolve_root", "hash_split", "split_entries", "default_workers", "MAX_AUTO_WORKERS"]

log = logging.getLogger(__name__)

MAX_AUTO_WORKERS = 8


def default_workers(devices_per_node: int = 1) -> int:
    """``data.num_workers: null``: the CPUs this process may use (``sched_getaffinity``) per local
    device, less one for the main process, at least 1 and at most :data:`MAX_AUTO_WORKERS`
    (Lightning's suggestion, so its "few workers" warning does not fire)."""
    return min(MAX_AUTO_WORKERS, suggested_max_num_workers(max(1, int(devices_per_node))))


def _cache_collate():
    from medsora.data.cache import collate_items  # lazy, like CacheDataset

    return collate_items


def resolve_root(data_cfg) -> Path:
    """``data.root`` as a folder; ``demo`` generates (once) and returns the embedded demo set."""
    if str(data_cfg.root) == "demo":
        from medsora.data.demo import ensure_demo

        return ensure_demo(seed=int(data_cfg.demo_seed), num_clips=int(data_cfg.demo_clips))
    return Path(str(data_cfg.root)).expanduser()


def _bucket(key: str) -> float:
    return int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big") / 2.0**64


def hash_split(key: str, val_fraction: float) -> str:
    """'val' for a stable ``val_fraction`` share of keys, 'train' for the rest (SHA-1 of the key)."""
    return "val" if _bucket(key) < val_fraction else "train"


def split_entries(entries: Sequence[VideoEntry], val_fraction: float) -> tuple[list[int], list[int]]:
    """Indices of the train and val videos: the manifest's split, else a hash of the path ("test" rows are left out).

    A small data set whose hashed share of validation videos comes out empty (5 % of 6 videos) still
    keeps one: the unsplit video whose hash is nearest the validation bucket (stable across runs), as
    long as at least one other video remains for training. When none can be kept the log says why.
    """
    train, val = [], []
    for index, entry in enumerate(entries):
        split = entry.split or hash_split(entry.key, val_fraction)
        if split == "train":
            train.append(index)
        elif split == "val":
            val.append(index)
    if not val and val_fraction > 0:
        movable = [i for i in train if entries[i].split is None]
        if movable and len(train) >= 2:
            keep = min(movable, key=lambda i: _bucket(entries[i].key))
            train.remove(keep)
            val.append(keep)
            log.info("data: data.val_fraction=%g of %d videos selects none; keeping %s for validation so the run "
                     "reports validation losses and reconstructions", val_fraction, len(train) + 1, entries[keep].key)
        else:
            why = ("the manifest marks no video split=val" if not movable and train
                   else f"{len(train)} training video(s) cannot spare one")
            log.warning("data: no validation videos (%s): no validation loss or reconstruction preview", why)
    return train, val


class VideoDataModule(L.LightningDataModule):
    """Video clips (or encode-cache items) for training and validation.

    Args:
        data_cfg: the ``data:`` section (:class:`medsora.data.schema.DataConfig`).
        modalities: keep only videos of these modalities (None: all).
        seed: the run seed. The training order of epoch e is a permutation seeded ``seed + e``
            and item i of epoch e is drawn under its own seed (temporal offset, crop), so that a
            resumed run continues with exactly the batches of the uninterrupted one, with any
            number of workers (:mod:`medsora.data.order`). None uses ``torch.initial_seed()``,
            i.e. the run seed after ``lightning.seed_everything``.

    The loaders shard by rank themselves: fit with ``Trainer(use_distributed_sampler=False)``.
    Counters of skipped inputs (unique files, shared by all workers) are in
    :meth:`counters` — log them during training; ``bad_files`` is the number of
    unreadable videos (and clips with NaN/Inf values) met so far.
    """

    def __init__(self, data_cfg, modalities: Optional[Sequence[str]] = None, seed: Optional[int] = None):
        super().__init__()
        self.cfg = data_cfg
        self.requested_modalities = list(modalities) if modalities is not None else None
        self.seed = int(seed) if seed is not None else None
        self.table: Optional[SourceTable] = None
        self.train_set: Optional[Dataset] = None
        self.val_set: Optional[Dataset] = None
        self.modalities: list[str] = []
        self.root: Optional[Path] = None
        self.summary = None  # ClipSummary of a video folder (None for a cache)
        self.layout_notes: list[str] = []
        self.fps: Optional[float] = None  # the data set's clip frame rate (median), None when unknown
        self._resume = (0, 0)  # (epoch, batches of it already trained) from a checkpoint

    # -- Lightning hooks -------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Runs on one process per node before ``setup``: generates the demo set if needed."""
        if not self.cfg.cache:
            resolve_root(self.cfg)

    def setup(self, stage: Optional[str] = None) -> None:
        if self.train_set is not None:
            return
        if self.cfg.cache:
            # Lazy import: the cache module belongs to the encode stage and is only needed here.
            from medsora.data.cache import CacheDataset

            cache_root = Path(str(self.cfg.cache)).expanduser()
            self.train_set = CacheDataset(cache_root, "train", max_bad_fraction=float(self.cfg.max_bad_fraction))
            self.val_set = CacheDataset(cache_root, "val", max_bad_fraction=float(self.cfg.max_bad_fraction))
            self.modalities = self.train_set.modalities()
            self.fps = self.train_set.manifest.get("fps")
            return
        settings = ClipSettings.from_config(self.cfg)
        self.root = resolve_root(self.cfg)
        entries = self._select(load_entries(self.root, self.cfg.manifest, notes=self.layout_notes))
        for note in self.layout_notes:
            warnings.warn(f"data layout: {note} (see python -m medsora.data check {self.cfg.root})", stacklevel=2)
        self.modalities = sorted({e.modality for e in entries})
        self.table = SourceTable(entries, self.cfg.max_bad_fraction, hint=str(self.cfg.root))
        checked = self.table.probe(int(self.cfg.probe_files), seed=0, axis=int(self.cfg.nifti_axis),
                                   max_pixels=settings.max_frame_pixels, lengths=settings.clips_per_video != 1)
        train, val = split_entries(entries, float(self.cfg.val_fraction))
        if not train:
            raise ManifestError(f"data.root {self.root}: no training videos ({len(val)} in val); "
                                "lower data.val_fraction or mark rows split=train in the manifest")
        self.train_set = VideoClipDataset(self.table, train, settings, train=True)
        self.val_set = VideoClipDataset(self.table, val, settings, train=False)
        self.fps = self.train_set.clip_fps()
        lengths = self.table.length.tolist()
        self.summary = summarise_clips(lengths, {"train": train, "val": val}, settings)
        log.info("data: %d train / %d val videos from %s (%d headers checked, %d unreadable)",
                 len(train), len(val), self.root, checked, self.table.count(SourceTable.UNREADABLE))
        lines = self.summary.lines()
        log.info("data: %s", lines[0])
        if self.summary.short:  # once per run, with the figures of `python -m medsora.data check`
            warnings.warn("data: " + "; ".join(lines[1:]), stacklevel=2)

    def _select(self, entries: list[VideoEntry]) -> list[VideoEntry]:
        if self.requested_modalities is None:
            return entries
        wanted = set(self.requested_modalities)
        kept = [e for e in entries if e.modality in wanted]
        found = {e.modality for e in entries}
        if not kept:
            raise ManifestError(f"data.root {self.root}: no videos of modalities {sorted(wanted)} "
                                f"(the data set has {sorted(found)})")
        missing = wanted - found
        if missing:
            log.warning("data: no videos of modalities %s in %s", sorted(missing), self.root)
        return kept

    @property
    def num_workers(self) -> int:
        """``data.num_workers``, or :func:`default_workers` for the trainer's devices when null."""
        if self.cfg.num_workers is not None:
            return int(self.cfg.num_workers)
        trainer = getattr(self, "trainer", None)
        return default_workers(trainer.num_devices if trainer is not None else 1)

    def _seed(self) -> int:
        return self.seed if self.seed is not None else torch.initial_seed() % 2**63

    def _loader(self, dataset: Dataset, sampler: ResumableSampler, drop_last: bool) -> DataLoader:
        workers = self.num_workers
        return DataLoader(
            SeededItems(dataset, self._seed()),
            batch_size=int(self.cfg.batch_size),
            sampler=sampler,
            drop_last=drop_last,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
            collate_fn=_cache_collate() if self.cfg.cache else None,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled by epoch, this rank's share, the last incomplete batch dropped (ranks step in lockstep)."""
        self.setup("fit")
        batch = int(self.cfg.batch_size)
        if len(self.train_set) < batch:
            raise ValueError(f"data: {len(self.train_set)} training clips but data.batch_size={batch}: lower the "
                             "batch size or add data")
        epoch, done = self._resume
        self._resume = (0, 0)
        balance = None
        if getattr(self.cfg, "balance", "none") != "none":  # Bora's modality balancing (medsora.data.balance)
            from medsora.data.balance import ModalityBalance, item_modalities

            balance = ModalityBalance(item_modalities(self.train_set), self.cfg.balance, self._seed())
            log.info("data.balance=%s: %s draws per modality per epoch", self.cfg.balance, balance.counts())
        sampler = ResumableSampler(len(self.train_set), self._seed(), epoch=epoch, skip=done * batch, balance=balance)
        return self._loader(self.train_set, sampler, drop_last=True)

    def val_dataloader(self):
        """The validation clips in order (every rank a share, padded by wrapping); ``[]`` when the split is empty."""
        self.setup("fit")
        if self.val_set is None or len(self.val_set) == 0:
            return []
        sampler = ResumableSampler(len(self.val_set), self._seed(), shuffle=False, drop_last=False)
        return self._loader(self.val_set, sampler, drop_last=False)

    # -- what the checkpoint and the training loop read ------------------------------------------
    def state_dict(self) -> dict:
        """Saved in every checkpoint: where the data order stands, and the clips' frame rate.

        ``epoch`` and ``batches_done`` (of that epoch) let a resumed fit continue with the next
        batch of the uninterrupted run; ``fps`` is the rate ``medsora.sample`` writes videos at.
        """
        state = {"fps": self.fps, "epoch": 0, "batches_done": 0}
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            progress = trainer.fit_loop.epoch_loop.batch_progress
            # A checkpoint written at a batch end has that batch processed; at an epoch's last batch
            # the resumed loop starts the next epoch from its first batch.
            last = bool(progress.is_last_batch)
            state["epoch"] = int(trainer.current_epoch) + int(last)
            state["batches_done"] = 0 if last else int(progress.current.processed)
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restores the data order (before Lightning builds the loaders)."""
        self._resume = (int(state.get("epoch", 0)), int(state.get("batches_done", 0)))

    def counters(self) -> dict[str, int]:
        """Unique skipped inputs so far: {"bad_files", "short_skipped", "short_padded"}.

        For a cache, ``bad_files`` counts items with non-finite values.
        """
        if self.table is None:
            bad = sum(getattr(s, "bad_items", 0) for s in (self.train_set, self.val_set) if s is not None)
            return {"bad_files": bad, "short_skipped": 0, "short_padded": 0}
        return self.table.counters()

    @property
    def bad_files(self) -> int:
        """Unreadable videos met so far (start-up probe and all workers)."""
        return self.counters()["bad_files"]
