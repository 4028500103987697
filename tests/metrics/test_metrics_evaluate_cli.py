"""``python -m medsora.evaluate``: sets from folders/manifests, skipped metrics, --strict, reports."""
from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from medsora.evaluate import main
from medsora.metrics.video_sets import list_videos, pair_videos


def _write_frames(folder, frames: np.ndarray) -> None:
    folder.mkdir(parents=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"frame_{i:03d}.png")


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """Real and generated sets of 16-frame 32×32 videos as frame folders (lossless), same names."""
    root = tmp_path_factory.mktemp("sets")
    rng = np.random.default_rng(0)
    for i in range(4):
        video = rng.integers(0, 200, (16, 32, 32, 3), dtype=np.uint8)
        _write_frames(root / "real" / f"clip_{i}", video)
        _write_frames(root / "fake" / f"clip_{i}", np.clip(video.astype(int) + 10, 0, 255).astype(np.uint8))
    return root


class _ScriptedI3D(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 400)

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                return_features: bool = False) -> torch.Tensor:
        return self.fc(x.float().mean(dim=(2, 3, 4)) / 127.5 - 1)


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(_ScriptedI3D()).save(str(folder / "i3d_torchscript.pt"))
    return folder


def _report(path):
    return json.loads(path.read_text())


def test_missing_weights_are_skipped_with_the_file_and_the_rest_computed(sets, tmp_path, capsys):
    out = tmp_path / "eval.json"
    rc = main(["--fake", str(sets / "fake"), "--real", str(sets / "real"), "--metrics",
               "fvd,temporal_flickering,psnr,hf_error", "--weights-dir", str(tmp_path / "empty"), "--out", str(out),
               "--no-progress"])
    assert rc == 0
    report = _report(out)
    assert "i3d_torchscript.pt" in report["skipped"]["fvd"] and "--i3d" in report["skipped"]["fvd"]
    assert "skipping fvd" in capsys.readouterr().err
    assert set(report["metrics"]) == {"temporal_flickering", "psnr", "hf_error"}
    psnr = report["metrics"]["psnr"]
    assert psnr["value"] == pytest.approx(10 * np.log10((255 / 10) ** 2), abs=1e-3)  # every pixel off by 10
    assert psnr["details"]["psnr_pairs"] == 4
    assert report["metrics"]["hf_error"]["value"] == pytest.approx(0.0, abs=1e-12)  # a pure brightness shift
    markdown = out.with_suffix(".md").read_text()
    assert "| psnr |" in markdown and "Skipped:" in markdown and "i3d_torchscript.pt" in markdown
    rows = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert len(rows) == 4 and all(line.replace("\\|", "").count("|") == 8 for line in rows)  # |x| is escaped
    flicker = report["metrics"]["temporal_flickering"]
    assert flicker["interval"]["low"] <= flicker["value"] <= flicker["interval"]["high"]  # bootstrapped by video
    assert report["metrics"]["temporal_flickering"]["protocol"].startswith("VBench")


def test_strict_turns_missing_weights_into_an_error(sets, tmp_path, capsys):
    rc = main(["--fake", str(sets / "fake"), "--real", str(sets / "real"), "--metrics", "temporal_flickering,fvd",
               "--weights-dir", str(tmp_path), "--strict", "--no-progress"])
    assert rc == 2
    assert "i3d_torchscript.pt" in capsys.readouterr().err


def test_fvd_from_the_weights_dir_and_an_explicit_flag(sets, weights_dir, tmp_path):
    out = tmp_path / "eval.json"
    assert main(["--fake", str(sets / "real"), "--real", str(sets / "real"), "--metrics", "fvd",
                 "--weights-dir", str(weights_dir), "--out", str(out), "--no-progress"]) == 0
    fvd = _report(out)["metrics"]["fvd"]
    assert fvd["value"] == pytest.approx(0.0, abs=1e-6) and fvd["details"]["fvd_clips_real"] == 4
    assert "first 16 frames" in fvd["protocol"]
    assert main(["--fake", str(sets / "fake"), "--real", str(sets / "real"), "--metrics", "fvd", "--i3d",
                 str(weights_dir / "i3d_torchscript.pt"), "--out", str(out), "--no-progress"]) == 0
    assert _report(out)["metrics"]["fvd"]["value"] > 0


def test_without_real_set_distribution_metrics_are_skipped(sets, tmp_path):
    out = tmp_path / "eval.json"
    assert main(["--fake", str(sets / "fake"), "--metrics", "fvd,psnr,temporal_flickering", "--out", str(out),
                 "--no-progress", "--num", "2"]) == 0
    report = _report(out)
    assert "--real" in report["skipped"]["fvd"] and "--real" in report["skipped"]["psnr"]
    assert report["num_fake"] == 2 and "temporal_flickering" in report["metrics"]


def test_unreadable_videos_are_listed_or_fatal_under_strict(sets, tmp_path):
    fake = tmp_path / "fake"
    shutil.copytree(sets / "fake", fake)
    (fake / "broken.mp4").write_bytes(b"not a video")
    out = tmp_path / "eval.json"
    assert main(["--fake", str(fake), "--metrics", "temporal_flickering", "--out", str(out), "--no-progress"]) == 0
    report = _report(out)
    assert len(report["unreadable"]) == 1 and "broken.mp4" in report["unreadable"][0]
    assert report["metrics"]["temporal_flickering"]["value"] < 1
    assert main(["--fake", str(fake), "--metrics", "temporal_flickering", "--strict", "--no-progress"]) == 2


def test_dims_on_real_adds_the_reference_column(sets, tmp_path):
    out = tmp_path / "eval.json"
    assert main(["--fake", str(sets / "fake"), "--real", str(sets / "real"), "--metrics", "temporal_flickering",
                 "--dims-on-real", "--out", str(out), "--no-progress"]) == 0
    entry = _report(out)["metrics"]["temporal_flickering"]
    assert entry["real_value"] is not None and 0 < entry["real_value"] < 1


def test_unknown_metric_is_an_error(sets, capsys):
    assert main(["--fake", str(sets / "fake"), "--metrics", "fvd,sharpness", "--no-progress"]) == 2
    assert "sharpness" in capsys.readouterr().err


def test_sets_from_manifest_and_folders(tmp_path):
    (tmp_path / "data" / "a").mkdir(parents=True)
    for name in ("a/x.mp4", "a/y.mp4", "z.mp4"):
        (tmp_path / "data" / name).write_bytes(b"")
    rows = [{"path": "a/x.mp4", "split": "test"}, {"path": "a/y.mp4", "split": "train"}, {"path": "z.mp4"}]
    manifest = tmp_path / "data" / "manifest.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    root, videos = list_videos(manifest, split="test")
    assert root == tmp_path / "data" and videos == [tmp_path / "data" / "a" / "x.mp4"]
    assert len(list_videos(manifest)[1]) == 3
    with pytest.raises(ValueError, match="split 'val'"):
        list_videos(manifest, split="val")

    samples = tmp_path / "samples"
    (samples / "a").mkdir(parents=True)
    for name in ("a/x.gif", "a/x.mp4", "a/y.mp4", "notes.txt"):
        (samples / name).write_bytes(b"")
    fake_root, fake = list_videos(samples)
    assert [p.name for p in fake] == ["x.mp4", "y.mp4"]  # the gif twin of x.mp4 is dropped
    real_root, real = list_videos(tmp_path / "data")
    pairs = pair_videos(real_root, real, fake_root, fake)
    assert [(r.name, f.name) for r, f in pairs] == [("x.mp4", "x.mp4"), ("y.mp4", "y.mp4")]


def test_a_real_set_holds_the_videos_training_sees(tmp_path, capsys):
    """Packaged files: two multi-page TIFFs in one folder are two videos (they were one frame folder of two
    first pages), a folder of single-frame DICOMs is one series, a frame folder beside them is one video."""
    from pathlib import Path

    import skimage
    from pydicom.data import get_testdata_file

    real = tmp_path / "real"
    (real / "microscopy").mkdir(parents=True)
    for name in ("multipage.tif", "multipage_rgb.tif"):
        shutil.copyfile(Path(skimage.__file__).parent / "data" / name, real / "microscopy" / name)
    (real / "ct" / "series").mkdir(parents=True)
    for i in range(3):
        shutil.copyfile(get_testdata_file("CT_small.dcm", download=False), real / "ct" / "series" / f"IM{i}.dcm")
    _write_frames(real / "endoscopy" / "frames", np.zeros((3, 16, 16, 3), dtype=np.uint8))
    root, videos = list_videos(real)
    assert [p.relative_to(root).as_posix() for p in videos] == \
        ["ct/series", "endoscopy/frames", "microscopy/multipage.tif", "microscopy/multipage_rgb.tif"]
    _write_frames(tmp_path / "fake" / "f0", np.zeros((3, 16, 16, 3), dtype=np.uint8))
    out = tmp_path / "eval.json"
    assert main(["--fake", str(tmp_path / "fake"), "--real", str(real), "--metrics", "temporal_flickering",
                 "--dims-on-real", "--out", str(out), "--no-progress"]) == 0
    report = json.loads(out.read_text())
    assert report["num_real"] == 4 and report["unreadable"] == []


def test_unpaired_names_skip_only_the_reconstruction_metrics(sets, tmp_path):
    fake = tmp_path / "renamed"
    shutil.copytree(sets / "fake" / "clip_0", fake / "sample_0")
    shutil.copytree(sets / "fake" / "clip_1", fake / "sample_1")
    out = tmp_path / "eval.json"
    assert main(["--fake", str(fake), "--real", str(sets / "real"), "--metrics", "psnr,temporal_flickering",
                 "--out", str(out), "--no-progress"]) == 0
    report = _report(out)
    assert "same relative name" in report["skipped"]["psnr"] and "temporal_flickering" in report["metrics"]
