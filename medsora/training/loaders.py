"""Train/val loaders of a run: the data helper's data sets with resumable, rank-aware sampling."""
from __future__ import annotations

import logging

import torch
from torch.utils.data import DataLoader

from medsora.training.data_order import ResumableSampler, SeededItems

__all__ = ["build_loaders"]

log = logging.getLogger("medsora.data")


def build_loaders(cfg, datamodule=None):
    """Loaders for ``cfg.data`` (videos, the demo set, or an encode cache).

    Args:
        cfg: the run config.
        datamodule: a ``VideoDataModule`` already set up (built from ``cfg.data`` when None).
    Returns:
        (train_loader, val_loader or None when the split is empty, datamodule; its ``modalities``
        list the data set's classes, for a cache those of its records). Training drops
        the last incomplete batch (every rank steps in lockstep); ``trainer.use_distributed_sampler``
        must be off, the sampler shards by rank itself.
    """
    from medsora.data.datamodule import VideoDataModule

    if cfg.data.cache:
        _check_cache(cfg)
    dm = datamodule or VideoDataModule(cfg.data, seed=cfg.seed)
    dm.prepare_data()
    dm.setup("fit")
    batch = int(cfg.data.batch_size)
    if len(dm.train_set) < batch:
        raise ValueError(f"data: {len(dm.train_set)} training clips but data.batch_size={batch}: lower the batch "
                         "size or add data")
    workers = int(cfg.data.num_workers)
    common = dict(batch_size=batch, num_workers=workers, persistent_workers=workers > 0,
                  pin_memory=torch.cuda.is_available())
    if cfg.data.cache:
        from medsora.data.cache import collate_items

        common["collate_fn"] = collate_items  # pads cached caption features
    train = DataLoader(SeededItems(dm.train_set, cfg.seed), sampler=ResumableSampler(len(dm.train_set), cfg.seed),
                       drop_last=True, **common)
    val = None
    if dm.val_set is not None and len(dm.val_set) > 0:
        val = DataLoader(SeededItems(dm.val_set, cfg.seed),
                         sampler=ResumableSampler(len(dm.val_set), cfg.seed, shuffle=False, drop_last=False), **common)
    if cfg.data.cache and not getattr(dm, "modalities", None):
        dm.modalities = _cache_modalities(dm.train_set)
    return train, val, dm


def _cache_modalities(dataset) -> list[str]:
    """Modality names of an encode cache split, read from its shards' record headers."""
    import json

    from safetensors import safe_open

    names = set()
    for shard in dataset.shards:
        with safe_open(str(shard), framework="pt") as fh:
            names.update(r["modality"] for r in json.loads(fh.metadata()["records"]) if r.get("modality"))
    return sorted(names)


def _check_cache(cfg) -> None:
    """Refuse an encode cache made from other data, another VAE or another flow target."""
    from medsora.data.cache import StaleCacheError, fingerprint_differences, read_manifest
    from medsora.encoding.fingerprint import run_fingerprint

    expected = run_fingerprint(cfg)
    if not cfg.align.enabled:
        expected.pop("align", None)  # the flow targets are not used
    manifest = read_manifest(cfg.data.cache)
    diffs = fingerprint_differences(manifest.get("fingerprint", {}), expected)
    if diffs:
        raise StaleCacheError(
            f"data.cache={cfg.data.cache} was not made for this run:\n  - " + "\n  - ".join(diffs)
            + "\nEncode a cache for it (python -m medsora.encode ... data.cache=NEW_DIR) or fix the settings."
        )
    if cfg.cond.text and not cfg.cond.use_template:
        from medsora.cond.text_encoder import text_encoder_identity
        from medsora.data.cache import check_text_features

        if check_text_features(manifest, cfg.cond, text_encoder_identity(cfg.cond.text_encoder)):
            log.info("cond: caption features come from the encode cache (T5 is not run in training)")
        else:
            log.info("cond: the encode cache has no caption features; T5 encodes the captions online")
