"""The embedded demo set: deterministic, atomic, faithful on re-read, and modality-distinct."""
from __future__ import annotations

import filecmp
import json
import subprocess

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import medsora.data.demo as demo
from medsora.data.datamodule import VideoDataModule
from medsora.data.demo import MODALITIES, ensure_demo, plan_clips
from medsora.data.demo.assets import load_assets
from medsora.data.demo.render import to_uint8
from medsora.data.demo.writer import video_encoder
from medsora.data.schema import DataConfig
from medsora.data.sources import read_video


PREFIX = {"endoscopy": "Endoscopy video: ", "ultrasound": "Ultrasound video: ", "mri": "MRI video: ",
          "microscopy": "Cell microscopy video "}


@pytest.fixture(scope="module")
def demo16(tmp_path_factory):
    return ensure_demo(tmp_path_factory.mktemp("demo-a"), seed=0, num_clips=16)


def _rows(folder):
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


def test_same_seed_gives_byte_identical_files(demo16, tmp_path):
    again = ensure_demo(tmp_path / "b", seed=0, num_clips=16)
    files = sorted(p.relative_to(demo16) for p in demo16.rglob("*") if p.is_file())
    assert len(files) == 17 and files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all(filecmp.cmp(demo16 / f, again / f, shallow=False) for f in files)
    other = ensure_demo(tmp_path / "c", seed=1, num_clips=4)
    assert not filecmp.cmp(demo16 / "mri" / "mri_000.mp4", other / "mri" / "mri_000.mp4", shallow=False)
    assert demo16.name == "demo-v3-seed0-n16" and ensure_demo(tmp_path / "b", seed=0, num_clips=16) == again


def test_manifest_describes_every_clip(demo16):
    rows = _rows(demo16)
    assert [r["modality"] for r in rows] == list(MODALITIES) * 4
    assert len({r["caption"] for r in rows}) >= 12  # captions vary with the clip's motion and settings
    for row in rows:
        assert row["caption"].startswith(PREFIX[row["modality"]])
        assert 17 <= row["frames"] <= 33 and 64 <= row["height"] <= 128 and 64 <= row["width"] <= 128
        frames, meta = read_video(demo16 / row["path"])
        assert frames.shape == (row["frames"], row["height"], row["width"], 3)
        assert meta["fps"] == pytest.approx(row["fps"])
    assert {r["split"] for r in rows} == {"train"}  # the 10th clip of a modality is the first val clip
    assert [p.split for p in plan_clips(0, 40)].count("val") == 4


def test_clips_read_back_as_generated(demo16):
    plan = plan_clips(0, 16)[2]  # an MRI clip
    make = demo._MAKERS[plan.modality][0]
    with demo._one_thread():
        video, caption, _ = make(load_assets(), demo._rng(0, plan.index, "content"), plan.frames, plan.height, plan.width)
    decoded, _ = read_video(demo16 / plan.path)
    expected = to_uint8(video)
    if video_encoder()[0] == "libx264rgb":
        np.testing.assert_array_equal(decoded, expected)  # lossless RGB
    else:
        assert np.abs(decoded.astype(int) - expected).mean() < 3
    assert caption == _rows(demo16)[2]["caption"]


def _features(frames: np.ndarray) -> np.ndarray:
    pixels = frames.astype(np.float32) / 255
    grey = pixels.mean(-1)
    return np.array([
        *pixels.mean((0, 1, 2)),  # colour
        (pixels.max(-1) - pixels.min(-1)).mean(),  # saturation
        (grey < 0.08).mean(),  # dark background / outside the sector
        np.abs(np.diff(grey, axis=0)).mean(),  # motion
        np.abs(np.diff(grey, axis=2)).mean(),  # texture
    ])


def test_modalities_are_recognisable_from_simple_statistics(demo16):
    rows = _rows(demo16)
    feats = np.stack([_features(read_video(demo16 / r["path"])[0]) for r in rows])
    feats = (feats - feats.mean(0)) / (feats.std(0) + 1e-6)
    labels = np.array([r["modality"] for r in rows])
    for k in range(len(rows)):  # leave-one-out nearest centroid
        others = np.arange(len(rows)) != k
        centroids = {m: feats[others & (labels == m)].mean(0) for m in MODALITIES}
        guess = min(centroids, key=lambda m: np.linalg.norm(feats[k] - centroids[m]))
        assert guess == labels[k], f"clip {rows[k]['path']} looks like {guess}"


def test_interrupted_generation_leaves_no_partial_set(tmp_path, monkeypatch):
    def interrupted(folder, seed, num_clips):
        (folder / "endoscopy").mkdir(parents=True)
        (folder / "endoscopy" / "endoscopy_000.mp4").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "generate_demo", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ensure_demo(tmp_path, seed=0, num_clips=4)
    assert list(tmp_path.iterdir()) == []

    finished = subprocess.Popen(["true"])
    finished.wait()
    stale = tmp_path / f".demo-v3-seed0-n4.tmp-{finished.pid}"  # left by a process that died
    stale.mkdir()
    monkeypatch.undo()
    folder = ensure_demo(tmp_path, seed=0, num_clips=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]


def test_data_root_demo_resolves_to_the_generated_set():
    cfg = OmegaConf.structured(DataConfig(root="demo", demo_clips=8, size=16, num_frames=5, batch_size=2,
                                          val_fraction=0.0))
    dm = VideoDataModule(cfg, seed=0)
    dm.prepare_data()
    dm.setup()
    assert dm.root.name == "demo-v3-seed0-n8" and dm.modalities == sorted(MODALITIES)
    batch = next(iter(dm.train_dataloader()))
    assert batch["video"].shape == (2, 3, 5, 16, 16) and torch.isfinite(batch["video"]).all()


def test_manifest_carries_the_generators_attributes(demo16):
    from medsora.data.demo import ATTRIBUTES

    base = {"path", "caption", "modality", "split", "frames", "height", "width", "fps"}
    for row in _rows(demo16):
        assert set(row) - base == set(ATTRIBUTES[row["modality"]])  # only the modality's own columns
        if row["modality"] == "ultrasound":  # the column is the rate the clip was rendered at
            assert f"at {row['heart_rate']} beats per minute" in row["caption"]
            assert row["heart_rate"] in (50, 65, 80, 100, 120) and row["probe_tilt"] in (0.0, 4.0, 8.0)
        if row["modality"] == "endoscopy":
            assert row["camera_motion"] in row["caption"]


def test_ultrasound_heartbeat_is_the_clips_dominant_rhythm(monkeypatch):
    """Demo v3: the beat swells and brightens the sector enough that the frame-mean intensity cycles at the
    manifest's heart rate (what heart-rate control is measured by) by far more than in v2 (median relative
    frame-mean std 0.22 against 0.08)."""
    from pathlib import Path

    from medsora.data.demo.ultrasound import make_ultrasound

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    from benchmarks.control import measured_rate  # the estimator the heart-rate benchmark uses, at 15 fps

    assets = load_assets()
    requested, found, depth = [], [], []
    for seed in range(12):
        video, _, attributes = make_ultrasound(assets, np.random.default_rng([7, seed]), 17, 64, 64)
        mean = video.mean(dim=(1, 2, 3)).double().numpy()
        requested.append(attributes["heart_rate"])
        found.append(measured_rate(video.transpose(0, 1)))  # T×1×H×W -> 1×T×H×W
        depth.append(mean.std() / mean.mean())
    assert len(set(requested)) >= 3
    assert np.mean(np.abs(np.array(found) - np.array(requested)) <= 12) >= 0.8, list(zip(requested, found))
    assert np.median(depth) > 0.15, depth  # frame-mean std over its mean: v3 0.22, v2 0.08
