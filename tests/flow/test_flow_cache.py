"""Encode cache: shards round-trip, fingerprints, stale and incomplete caches are refused."""
from __future__ import annotations

import hashlib

import pytest
import torch

from medsora.config import compose
from medsora.flow import FlowTeacher
from medsora.data.cache import (
    CacheDataset, IncompleteCacheError, StaleCacheError, fingerprint_differences, shard_items,
    shard_path, shard_plan, write_manifest, write_shard,
)
from medsora.encoding.fingerprint import run_fingerprint


def _write_cache(root, num_items=5, shard_size=2, dtype=torch.float32, fingerprint=None):
    gen = torch.Generator().manual_seed(0)
    data = {
        "latent_mean": torch.randn(num_items, 4, 2, 3, 3, generator=gen),
        "latent_std": torch.rand(num_items, 4, 2, 3, 3, generator=gen),
        "flow": torch.randn(num_items, 2, 3, 3, 7, generator=gen),
    }
    records = [{"caption": f"clip {i}", "modality": "endoscopy", "path": f"v{i}.mp4"} for i in range(num_items)]
    write_manifest(root, {"fingerprint": fingerprint or {"data": {"num_frames": 5}}, "scaling_factor": 0.7,
                          "splits": {"train": {"num_items": num_items, "shard_size": shard_size}}})
    for index, (start, stop) in enumerate(shard_plan(num_items, shard_size)):
        write_shard(shard_path(root, "train", index), {k: v[start:stop].to(dtype) for k, v in data.items()},
                    records[start:stop])
    return data, records


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_shards_round_trip(tmp_path, dtype):
    data, records = _write_cache(tmp_path, dtype=dtype)
    ds = CacheDataset(tmp_path, "train", expect={"data": {"num_frames": 5}})
    assert len(ds) == 5 and ds.scaling_factor == pytest.approx(0.7)
    assert sorted(p.name for p in (tmp_path / "train").iterdir()) == [f"shard-0000{i}.safetensors" for i in range(3)]
    for i in (0, 3, 4, -1):
        item = ds[i]
        for key in ("latent_mean", "latent_std", "flow"):
            assert item[key].dtype == torch.float32
            torch.testing.assert_close(item[key], data[key][i].to(dtype).float())
        assert {k: item[k] for k in ("caption", "modality", "path")} == records[i]
    with pytest.raises(IndexError):
        ds[5]
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert batch["flow"].shape == (3, 2, 3, 3, 7) and batch["caption"] == ["clip 0", "clip 1", "clip 2"]


def test_shards_are_written_atomically(tmp_path):
    _write_cache(tmp_path)
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]
    assert shard_items(shard_path(tmp_path, "train", 2)) == 1
    shard_path(tmp_path, "train", 9).write_bytes(b"truncated")
    assert shard_items(shard_path(tmp_path, "train", 9)) == -1


def test_stale_cache_is_refused_with_every_difference(tmp_path):
    cfg = compose(overrides=["data.root=demo", "data.num_frames=9", "align.teacher.weights=random"])
    made = run_fingerprint(cfg, vae_sha256="abc")
    _write_cache(tmp_path, fingerprint=made)
    assert len(CacheDataset(tmp_path, "train", expect=made)) == 5
    other = compose(overrides=["data.root=demo", "data.num_frames=17", "align.teacher.weights=random",
                               "align.target=flow"])
    with pytest.raises(StaleCacheError) as err:
        CacheDataset(tmp_path, "train", expect=run_fingerprint(other, vae_sha256="def"))
    msg = str(err.value)
    for line in ("data.num_frames: cache has 9, this run expects 17", "vae.ckpt_sha256: cache has 'abc'",
                 "align.target: cache has 'raft_motion', this run expects 'flow'", "python -m medsora.encode"):
        assert line in msg
    # Only what the run can know is checked: no VAE hash in the expectation, no VAE check.
    assert fingerprint_differences(made, {k: v for k, v in made.items() if k != "vae"}) == []


def test_fingerprint_records_teacher_weights_and_vae(tmp_path):
    ckpt = tmp_path / "vae.ckpt"
    ckpt.write_bytes(b"weights")
    cfg = compose(overrides=["data.root=demo", f"vae.ckpt={ckpt}", "align.teacher.weights=random",
                             "align.teacher.seed=4"])
    fp = run_fingerprint(cfg)
    assert fp["vae"]["ckpt_sha256"] == hashlib.sha256(b"weights").hexdigest()
    assert fp["align"]["weights"] == "random(seed=4)" and fp["align"]["patch"] == 2
    assert fp["data"]["demo_clips"] == cfg.data.demo_clips
    weights = tmp_path / "raft.pth"
    weights.write_bytes(b"raft")
    missing = compose(overrides=["data.root=demo", f"vae.ckpt={ckpt}", f"align.teacher.weights={weights}"])
    ckpt.unlink()  # gone after start-up (compose itself refuses a path that does not exist)
    weights.unlink()
    assert "vae" not in run_fingerprint(missing) and "weights" not in run_fingerprint(missing)["align"]


@pytest.mark.parametrize("target", ["raft_motion", "flow"])
def test_config_fingerprint_matches_the_built_teacher(target):
    cfg = compose(overrides=["data.root=demo", f"align.target={target}", "align.teacher.weights=random"])
    with pytest.warns(UserWarning, match="RANDOMLY"):
        teacher = FlowTeacher.from_config(cfg.align)
    assert run_fingerprint(cfg)["align"] == {**teacher.identity(), "patch": cfg.model.patch}


def test_missing_and_incomplete_caches_say_how_to_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m medsora.encode"):
        CacheDataset(tmp_path / "none", "train")
    _write_cache(tmp_path)
    shard_path(tmp_path, "train", 1).unlink()
    with pytest.raises(IncompleteCacheError, match="1 of 3 'train' shards .* re-run"):
        CacheDataset(tmp_path, "train")
    with pytest.raises(KeyError, match="no split 'val'"):
        CacheDataset(tmp_path, "val")
