"""Checkpoint files: never half-written, found by ckpt=last, loaded with weights_only."""
from __future__ import annotations

import argparse

import pytest
import torch

from medsora.training.checkpointing import AtomicCheckpointIO, load_checkpoint, resolve_ckpt


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("interrupted while writing")


def test_a_failed_save_leaves_the_previous_checkpoint_intact(tmp_path):
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"global_step": 1, "w": torch.ones(3)}, path)
    with pytest.raises(RuntimeError, match="interrupted"):
        io.save_checkpoint({"global_step": 2, "w": torch.zeros(3), "bad": Unpicklable()}, path)
    assert io.load_checkpoint(path)["global_step"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no temporary file left behind


def test_loading_refuses_pickled_code(tmp_path):
    path = tmp_path / "x.ckpt"
    torch.save({"args": argparse.Namespace(lr=1.0)}, path)  # arbitrary objects need unpickling code
    with pytest.raises(RuntimeError, match="weights_only=True"):
        load_checkpoint(path)


def test_resolve_ckpt_finds_the_newest_last_and_explains_misses(tmp_path):
    assert resolve_ckpt(None, tmp_path) is None
    with pytest.raises(FileNotFoundError, match=r"ckpt=last: no .*\.ckpt yet"):
        resolve_ckpt("last", tmp_path / "run")
    for version in ("version_0", "version_1"):
        AtomicCheckpointIO().save_checkpoint({"v": version}, tmp_path / "run" / version / "checkpoints" / "last.ckpt")
    assert resolve_ckpt("last", tmp_path / "run").parent.parent.name == "version_1"
    with pytest.raises(FileNotFoundError, match="ckpt=nope.ckpt: no such file"):
        resolve_ckpt("nope.ckpt", tmp_path)
