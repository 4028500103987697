"""The Lightning DataModule: a data folder (or the demo set, or an encode cache) -> batches.

Batches: {"video": B×3×F×H×W float32 in [-1, 1], "caption": list[str],
"modality": list[str], "path": list[str] (relative to the data root)}. With
``data.cache`` set, batches are those of :class:`medsora.data.cache.CacheDataset`
(latent statistics and flow targets) instead.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Optional, Sequence

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from medsora.data.dataset import ClipSettings, VideoClipDataset
from medsora.data.manifest import ManifestError, VideoEntry, load_entries
from medsora.data.table import SourceTable

__all__ = ["VideoDataModule", "resolve_root", "hash_split", "split_entries"]

log = logging.getLogger(__name__)


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
    """Video clips for training and validation.

    Args:
        data_cfg: the ``data:`` section (:class:`medsora.data.schema.DataConfig`).
        modalities: keep only videos of these modalities (None: all).
        seed: seeds the loaders' generators: the shuffling order and, through
            DataLoader's per-worker base seed, the torch RNG of each worker that
            draws the random offsets and crops. None uses ``torch.initial_seed()``,
            i.e. the run seed after ``lightning.seed_everything``. With
            ``num_workers: 0`` items draw from the main process's (seeded) RNG.

    Counters of skipped inputs (unique files, shared by all workers) are in
    :meth:`counters` — log them during training; ``bad_files`` is the number of
    unreadable videos met so far.
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
            self.train_set = CacheDataset(cache_root, "train")
            self.val_set = CacheDataset(cache_root, "val")
            return
        self.root = resolve_root(self.cfg)
        entries = self._select(load_entries(self.root, self.cfg.manifest))
        self.modalities = sorted({e.modality for e in entries})
        self.table = SourceTable(entries, self.cfg.max_bad_fraction, hint=str(self.cfg.root))
        checked = self.table.probe(int(self.cfg.probe_files), seed=0, axis=int(self.cfg.nifti_axis))
        train, val = split_entries(entries, float(self.cfg.val_fraction))
        if not train:
            raise ManifestError(f"data.root {self.root}: no training videos ({len(val)} in val); "
                                "lower data.val_fraction or mark rows split=train in the manifest")
        settings = ClipSettings.from_config(self.cfg)
        self.train_set = VideoClipDataset(self.table, train, settings, train=True)
        self.val_set = VideoClipDataset(self.table, val, settings, train=False)
        log.info("data: %d train / %d val videos from %s (%d headers checked, %d unreadable)",
                 len(train), len(val), self.root, checked, self.table.count(SourceTable.UNREADABLE))

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

    def _loader(self, dataset: Dataset, train: bool) -> DataLoader:
        workers = int(self.cfg.num_workers)
        seed = self.seed if self.seed is not None else torch.initial_seed()
        return DataLoader(
            dataset,
            batch_size=int(self.cfg.batch_size),
            shuffle=train,
            drop_last=train and len(dataset) >= int(self.cfg.batch_size),
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
            # Seeds the shuffling and, through it, each worker's torch RNG (base seed + worker id).
            generator=torch.Generator().manual_seed(int(seed) % 2**63),
            collate_fn=_cache_collate() if self.cfg.cache else None,
        )

    def train_dataloader(self) -> DataLoader:
        self.setup("fit")
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        self.setup("fit")
        return self._loader(self.val_set, train=False)

    # -- what the training loop logs ---------------------------------------------------------------
    def counters(self) -> dict[str, int]:
        """Unique skipped inputs so far: {"bad_files", "short_skipped", "short_padded"} (zeros for a cache)."""
        if self.table is None:
            return {"bad_files": 0, "short_skipped": 0, "short_padded": 0}
        return self.table.counters()

    @property
    def bad_files(self) -> int:
        """Unreadable videos met so far (start-up probe and all workers)."""
        return self.counters()["bad_files"]
