"""VideoDataModule: batches, splits, seeded sampling, bad and short inputs, adaptive interval, cache."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from medsora.data.datamodule import VideoDataModule, hash_split
from medsora.data.manifest import ManifestError
from medsora.data.schema import DataConfig
from medsora.data.table import DataError, UnreadableVideoWarning


def _cfg(root, **overrides):
    base = dict(root=str(root), size=16, num_frames=5, batch_size=2, val_fraction=0.0, crop="random")
    base.update(overrides)
    return OmegaConf.structured(DataConfig(**base))


def _write_set(root, media, names, frames=8, height=24, width=40, manifest=None):
    for k, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        media.video(path, media.pattern(frames, height, width))
    if manifest is not None:
        (root / "manifest.jsonl").write_text("".join(json.dumps(row) + "\n" for row in manifest))


def _drain(loader):
    return [batch for batch in loader]


def test_batches_have_the_contract_shape(tmp_path, media):
    _write_set(tmp_path, media, ["endoscopy/a.mp4", "endoscopy/b.mp4", "mri/c.mp4", "mri/d.mp4"], height=120, width=200)
    dm = VideoDataModule(_cfg(tmp_path), seed=0)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.modalities == ["endoscopy", "mri"] and len(dm.train_set) == 4 and len(dm.val_set) == 0
    batches = _drain(dm.train_dataloader())
    assert len(batches) == 2
    batch = batches[0]
    assert set(batch) == {"video", "caption", "modality", "path", "clip", "fps", "attributes"}
    assert batch["fps"].tolist() == [8.0, 8.0] and batch["clip"].tolist() == [0, 0]  # the files' 8 fps, stride 1
    assert batch["video"].shape == (2, 3, 5, 16, 16) and batch["video"].dtype == torch.float32
    assert batch["video"].min() >= -1 and batch["video"].max() <= 1
    assert all(isinstance(c, str) for c in batch["caption"]) and batch["caption"][0].startswith("This is a")
    assert sorted(p for b in batches for p in b["path"]) == ["endoscopy/a.mp4", "endoscopy/b.mp4", "mri/c.mp4", "mri/d.mp4"]
    assert dm.counters() == {"bad_files": 0, "short_skipped": 0, "short_padded": 0}


def test_manifest_split_and_path_hash_split(tmp_path, media):
    names = [f"v/{k}.mp4" for k in range(6)]
    rows = [{"path": names[0], "split": "val"}, {"path": names[1], "split": "test"}, {"path": names[2], "split": "train"}]
    rows += [{"path": n} for n in names[3:]]
    _write_set(tmp_path, media, names, frames=5, manifest=rows)
    dm = VideoDataModule(_cfg(tmp_path, val_fraction=0.5))
    dm.setup()
    train = {dm.table.entries[i].key for i in dm.train_set.indices}
    val = {dm.table.entries[i].key for i in dm.val_set.indices}
    hashed = {n: hash_split(n, 0.5) for n in names[3:]}
    assert "v/0.mp4" in val and "v/2.mp4" in train and "v/1.mp4" not in train | val
    assert all((n in val) == (s == "val") for n, s in hashed.items())
    shares = [hash_split(f"clip_{k}.mp4", 0.1) == "val" for k in range(2000)]
    assert 0.08 < np.mean(shares) < 0.12  # the hash split honours val_fraction


def test_training_clips_are_random_and_seeded_validation_is_fixed(tmp_path, media):
    _write_set(tmp_path, media, ["m/a.mp4", "m/b.mp4"], frames=30)
    dm = VideoDataModule(_cfg(tmp_path), seed=3)
    dm.setup()

    def epoch(dataset, seed):
        torch.manual_seed(seed)
        return torch.stack([dataset[i]["video"] for i in range(len(dataset))])

    assert not torch.equal(epoch(dm.train_set, 0), epoch(dm.train_set, 1))
    torch.testing.assert_close(epoch(dm.train_set, 5), epoch(dm.train_set, 5))
    from medsora.data.dataset import VideoClipDataset

    val = VideoClipDataset(dm.table, dm.train_set.indices, dm.train_set.settings, train=False)
    torch.testing.assert_close(epoch(val, 0), epoch(val, 1))
    # Items are drawn under seeds of their own (run seed, epoch, index): the global RNG plays no part.
    torch.manual_seed(7)
    a = [b["video"] for b in _drain(dm.train_dataloader())]
    torch.manual_seed(8)
    b = [b["video"] for b in _drain(VideoDataModule(_cfg(tmp_path), seed=3).train_dataloader())]
    torch.testing.assert_close(torch.cat(a), torch.cat(b))  # same run seed, same batches


def test_bad_files_found_at_start_up_are_skipped_and_counted(tmp_path, media):
    _write_set(tmp_path, media, [f"endoscopy/{k}.mp4" for k in range(4)])
    whole = (tmp_path / "endoscopy" / "0.mp4").read_bytes()
    (tmp_path / "endoscopy" / "truncated.mp4").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "endoscopy" / "noise.dcm").write_bytes(np.random.default_rng(0).bytes(700))
    dm = VideoDataModule(_cfg(tmp_path, max_bad_fraction=0.5), seed=0)
    with pytest.warns(UnreadableVideoWarning) as record:
        dm.setup()
    messages = " ".join(str(w.message) for w in record)
    assert "truncated.mp4: cannot open" in messages and "noise.dcm: not a readable DICOM file" in messages
    assert dm.bad_files == 2
    paths = [p for batch in _drain(dm.train_dataloader()) for p in batch["path"]]
    assert len(paths) == 6 and not {"endoscopy/truncated.mp4", "endoscopy/noise.dcm"} & set(paths)
    assert dm.counters()["bad_files"] == 2


def test_bad_files_met_inside_workers_reach_the_main_process(tmp_path, media):
    names = [f"us/{k}.mp4" for k in range(6)]
    _write_set(tmp_path, media, names)
    frames = media.pattern(8, 24, 40)
    for name in ("us/cut_a.mp4", "us/cut_b.mp4"):
        data = media.video(tmp_path / name, frames, container_options={"movflags": "+faststart"}).read_bytes()
        (tmp_path / name).write_bytes(data[: int(len(data) * 0.55)])  # header fine, frames missing
    cfg = _cfg(tmp_path, max_bad_fraction=0.5, num_workers=2, probe_files=0, batch_size=4)
    dm = VideoDataModule(cfg, seed=0)
    dm.setup()
    assert dm.bad_files == 0  # nothing probed, nothing known yet
    loader = dm.train_dataloader()
    assert loader.persistent_workers and loader.num_workers == 2
    paths = [p for batch in _drain(loader) for p in batch["path"]]
    assert dm.bad_files == 2 and set(paths) <= set(names)
    _drain(loader)  # a second epoch does not count the same files again
    assert dm.bad_files == 2


def test_too_many_bad_files_stop_start_up_with_a_list(tmp_path, media):
    _write_set(tmp_path, media, ["e/ok.mp4"])
    for k in range(3):
        (tmp_path / "e" / f"broken{k}.mp4").write_bytes(b"\x00" * 64)
    dm = VideoDataModule(_cfg(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnreadableVideoWarning)
        with pytest.raises(DataError) as err:
            dm.setup()
    message = str(err.value)
    assert "3 of 4 videos are unreadable (75.0%), more than data.max_bad_fraction = 0.05" in message
    assert f"{tmp_path / 'e' / 'broken0.mp4'}: cannot open" in message
    assert "python -m medsora.data check" in message


@pytest.mark.parametrize("policy", ["pad", "skip"])
def test_short_videos_padded_or_skipped_and_counted(tmp_path, media, policy):
    _write_set(tmp_path, media, ["m/long_a.mp4", "m/long_b.mp4"], frames=8)
    media.video(tmp_path / "m" / "one.mp4", media.pattern(1, 24, 40))
    media.video(tmp_path / "m" / "two.mp4", media.pattern(2, 24, 40))
    dm = VideoDataModule(_cfg(tmp_path, short_videos=policy, crop="center"), seed=0)
    dm.setup()
    keys = [dm.table.entries[i].key for i in dm.train_set.indices]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        items = {keys[i]: dm.train_set[i] for i in range(len(keys))}
    if policy == "pad":
        two = items["m/two.mp4"]["video"]
        assert two.shape == (3, 5, 16, 16) and items["m/two.mp4"]["path"] == "m/two.mp4"
        assert all(torch.equal(two[:, k], two[:, 1]) for k in (2, 3, 4)) and not torch.equal(two[:, 0], two[:, 1])
        assert dm.counters() == {"bad_files": 0, "short_skipped": 0, "short_padded": 2}
    else:
        assert {items[k]["path"] for k in ("m/one.mp4", "m/two.mp4")} <= {"m/long_a.mp4", "m/long_b.mp4"}
        assert dm.counters() == {"bad_files": 0, "short_skipped": 2, "short_padded": 0}


def test_adaptive_interval_in_the_data_set(tmp_path):
    folder = tmp_path / "cells" / "well"
    folder.mkdir(parents=True)
    for t in range(40):  # brightness +10 per frame: mean |Δ| = s·10/255 at stride s
        Image.fromarray(np.full((12, 12), 10 + 5 * t, np.uint8)).save(folder / f"f{t}.png")
    dm = VideoDataModule(_cfg(tmp_path, adaptive_interval=True, threshold_k=0.05, max_stride=6, crop="center"))
    dm.setup()
    torch.manual_seed(0)
    video = dm.train_set[0]["video"]
    steps = (video[0, 1:, 0, 0] - video[0, :-1, 0, 0]) * 127.5
    assert torch.allclose(steps, torch.full_like(steps, 15.0), atol=0.01)  # stride 3 = smallest with 3·5/255 > 0.05
    assert int(dm.table.stride[dm.train_set.indices[0]]) == 3


def test_modalities_filter(tmp_path, media):
    _write_set(tmp_path, media, ["endoscopy/a.mp4", "mri/b.mp4", "mri/c.mp4"], frames=5)
    dm = VideoDataModule(_cfg(tmp_path), modalities=["mri"])
    dm.setup()
    assert dm.modalities == ["mri"] and len(dm.train_set) == 2
    with pytest.raises(ManifestError, match=r"no videos of modalities \['ultrasound'\] \(the data set has"):
        VideoDataModule(_cfg(tmp_path), modalities=["ultrasound"]).setup()


def test_cache_is_read_instead_of_videos(tmp_path):
    from medsora.data.cache import shard_path, shard_plan, write_manifest, write_shard

    cache = tmp_path / "cache"
    records = [{"caption": f"clip {i}", "modality": "mri", "path": f"{i}.mp4"} for i in range(3)]
    write_manifest(cache, {"fingerprint": {}, "scaling_factor": 1.0,
                           "splits": {s: {"num_items": 3, "shard_size": 3} for s in ("train", "val")}})
    for split in ("train", "val"):
        (start, stop), = shard_plan(3, 3)
        write_shard(shard_path(cache, split, 0), {"latent_mean": torch.zeros(3, 4, 2, 2, 2),
                                                  "latent_std": torch.ones(3, 4, 2, 2, 2),
                                                  "flow": torch.zeros(3, 2, 2, 2, 6)}, records[start:stop])
    dm = VideoDataModule(_cfg(tmp_path / "no-videos-here", cache=str(cache)))
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch["latent_mean"].shape == (2, 4, 2, 2, 2) and batch["modality"] == ["mri", "mri"]
    assert dm.counters()["bad_files"] == 0


def test_train_crop_gives_random_windows_of_the_full_clip_and_validation_keeps_full_frames(tmp_path, media):
    _write_set(tmp_path, media, ["m/a.mp4"], frames=5, height=24, width=24)
    full = VideoDataModule(_cfg(tmp_path, crop="center"), seed=0)
    full.setup()
    whole = full.train_set[0]["video"]  # 3×5×16×16, the one clip (5 frames: no temporal offset to draw)
    dm = VideoDataModule(_cfg(tmp_path, crop="center", train_crop=8), seed=0)
    dm.setup()
    windows = set()
    for seed in range(12):
        torch.manual_seed(seed)
        crop = dm.train_set[0]["video"]
        assert crop.shape == (3, 5, 8, 8)
        # the crop is one window of the full clip, the same in every frame
        hits = [(y, x) for y in range(9) for x in range(9) if torch.equal(crop, whole[..., y:y + 8, x:x + 8])]
        assert len(hits) >= 1
        windows.add(hits[0])
    assert len(windows) > 3  # the window moves
    from medsora.data.dataset import VideoClipDataset

    val = VideoClipDataset(dm.table, dm.train_set.indices, dm.train_set.settings, train=False)
    torch.testing.assert_close(val[0]["video"], whole)  # validation (and encoding) see full frames
