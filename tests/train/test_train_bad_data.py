"""NaN/Inf in the data: named, counted as bad data, kept out of training and validation metrics; steps
skipped too often stop the run naming the clips."""
from __future__ import annotations

import warnings

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from medsora.config import compose
from lightning.pytorch import Callback

from medsora.data.cache import shard_path
from medsora.data.table import DataError
from medsora.training.stage import build_datamodule, fit_stage
from medsora.training.callbacks import NonFiniteLossError
from medsora.training.diffusion_module import DiffusionModule


def _poison(cache, split: str, index: int, shard_size: int = 4) -> None:
    """Write NaN into item ``index`` of a cache split (its shard rewritten with the same records)."""
    path = shard_path(cache, split, index // shard_size)
    with safe_open(str(path), framework="pt") as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        meta = fh.metadata()
    tensors["latent_mean"][index % shard_size, 0, 0, 0, 0] = float("nan")
    save_file(tensors, str(path), metadata=meta)


@pytest.fixture
def nan_cache(tmp_path, cache_tools):
    make_cache, tiny_overrides = cache_tools
    cache = make_cache(tmp_path / "cache", n_val=6)
    _poison(cache, "train", 3)
    _poison(cache, "val", 1)
    return cache, tiny_overrides


def test_nan_clips_are_named_left_out_of_training_and_validation(tmp_path, nan_cache):
    cache, tiny_overrides = nan_cache
    seen = {"train": [], "val": []}

    class Record(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            seen["train"] += list(batch["path"])

        def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
            seen["val"] += list(batch["path"])

    cfg = compose(overrides=tiny_overrides(cache, tmp_path / "runs", "trainer.max_steps=8", "data.num_workers=0",
                                           "data.max_bad_fraction=0.2", "trainer.val_check_interval=4"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit_stage(cfg, callbacks=[Record()])
    messages = " ".join(str(w.message) for w in caught)
    assert "bad data: train/3.mp4" in messages and "bad data: val/1.mp4" in messages
    assert "train/3.mp4" not in seen["train"] and "val/1.mp4" not in seen["val"] and seen["val"]
    assert torch.isfinite(torch.tensor(result.metrics["val/loss"]))
    assert result.metrics["data/bad_files"] == 2.0


def test_too_many_nan_clips_stop_the_run_naming_them(tmp_path, nan_cache):
    cache, tiny_overrides = nan_cache
    _poison(cache, "train", 0)  # with item 3: 2 of 8 bad, more than 20 %
    cfg = compose(overrides=tiny_overrides(cache, tmp_path / "runs", "data.num_workers=0",
                                           "data.max_bad_fraction=0.2"))
    dm = build_datamodule(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataError, match=r"2 of 8 'train' items hold NaN/Inf, more than data.max_bad_fraction = 0.2 \(the last: train/3.mp4"):
            [dm.train_set[i] for i in range(len(dm.train_set))]


def test_clips_that_keep_skipping_steps_stop_the_run_with_their_names(tmp_path, cache_tools):
    make_cache, tiny_overrides = cache_tools
    cache = make_cache(tmp_path / "cache")
    cfg = compose(overrides=tiny_overrides(cache, tmp_path / "runs", "trainer.max_steps=40", "data.num_workers=0",
                                           "trainer.max_skipped_fraction=0.1", "trainer.checkpoint_every_n_steps=100"))
    module = DiffusionModule(cfg, ["endoscopy", "mri"])
    clean = module.loss_terms

    def loss_terms(batch, rng, train=True):  # the loss is NaN whenever clip train/5.mp4 is in the batch
        terms = clean(batch, rng, train)
        if train and "train/5.mp4" in batch["path"]:
            terms["loss"] = terms["loss"] * float("nan")
        return terms

    module.loss_terms = loss_terms
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # a quarter of the batches hold train/5.mp4: the run stops at the first skip after 20 steps
        with pytest.raises(NonFiniteLossError, match=r"\d+ of 2\d training steps \(2\d%\) had a non-finite loss, more "
                                                     r"than trainer.max_skipped_fraction=0.1: stopping. Clips in the "
                                                     r"most skipped steps: train/5.mp4 \(\d+×\)"):
            fit_stage(cfg, module=module)
