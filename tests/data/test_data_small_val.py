"""A small data set still gets a validation video, or the log says why it cannot."""
from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import OmegaConf

from medsora.data.datamodule import VideoDataModule, hash_split, split_entries
from medsora.data.manifest import VideoEntry
from medsora.data.schema import DataConfig


def _entries(n: int, split=None) -> list[VideoEntry]:
    return [VideoEntry(Path(f"/d/v{k}.mp4"), f"v{k}.mp4", "", "m", split, {}) for k in range(n)]


def test_five_percent_of_six_videos_keeps_one_for_validation(caplog):
    entries = _entries(6)
    assert all(hash_split(e.key, 0.05) == "train" for e in entries)  # the hash alone selects none
    with caplog.at_level(logging.INFO, logger="medsora.data.datamodule"):
        train, val = split_entries(entries, 0.05)
    assert len(val) == 1 and len(train) == 5 and sorted(train + val) == list(range(6))
    assert "selects none; keeping v" in caplog.text
    assert split_entries(list(reversed(entries)), 0.05)[1] == [5 - val[0]]  # the same video, whatever the order


def test_no_validation_is_explained_when_none_can_be_kept(caplog):
    with caplog.at_level(logging.WARNING, logger="medsora.data.datamodule"):
        assert split_entries(_entries(1), 0.05) == ([0], [])
        assert "1 training video(s) cannot spare one" in caplog.text
        assert split_entries(_entries(3, "train"), 0.05) == ([0, 1, 2], [])
        assert "the manifest marks no video split=val" in caplog.text
    assert split_entries(_entries(6), 0.0) == (list(range(6)), [])  # val_fraction=0 asks for none


def test_the_data_module_validates_on_a_small_folder(tmp_path, media):
    (tmp_path / "m").mkdir()
    for k in range(6):
        media.video(tmp_path / "m" / f"{k}.mp4", media.pattern(5, 24, 40))
    cfg = OmegaConf.structured(DataConfig(root=str(tmp_path), size=16, num_frames=5, batch_size=2, val_fraction=0.05))
    dm = VideoDataModule(cfg, seed=0)
    dm.setup()
    assert len(dm.train_set) == 5 and len(dm.val_set) == 1
    assert next(iter(dm.val_dataloader()))["video"].shape == (1, 3, 5, 16, 16)
