"""CD-FVD: VideoMAE features from a local transformers folder (a tiny random-initialised VideoMAE saved with
save_pretrained), the same skip-or---strict behaviour as the other weight-backed metrics."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from medsora.evaluate import main
from medsora.metrics.cd_fvd import CDFVD, load_videomae


@pytest.fixture(scope="module")
def videomae_dir(tmp_path_factory):
    from transformers import VideoMAEConfig, VideoMAEModel

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("videomae")
    config = VideoMAEConfig(image_size=32, patch_size=16, num_frames=4, tubelet_size=2, hidden_size=32,
                            num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    VideoMAEModel(config).save_pretrained(folder)
    return folder


def _videos(n, seed, shift=0):
    rng = np.random.default_rng(seed)
    return [torch.from_numpy(np.clip(rng.integers(0, 200, (6, 24, 24, 3)) + shift, 0, 255).astype(np.uint8))
            for _ in range(n)]


def test_features_are_the_transformers_encoder_mean_pooled(videomae_dir):
    from transformers import VideoMAEModel

    detector = load_videomae(videomae_dir)
    clips = torch.stack(_videos(2, 0)).permute(0, 4, 1, 2, 3)[:, :, :4].contiguous()  # B×3×4×24×24 uint8
    frames = torch.nn.functional.interpolate(clips.permute(0, 2, 1, 3, 4).flatten(0, 1).float() / 255, size=(32, 32),
                                             mode="bilinear", antialias=True).view(2, 4, 3, 32, 32)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 1, 3, 1, 1)
    with torch.no_grad():
        want = VideoMAEModel.from_pretrained(videomae_dir).eval()(pixel_values=(frames - mean) / std)
    torch.testing.assert_close(detector(clips), want.last_hidden_state.mean(1))


def test_cd_fvd_self_zero_shift_positive_with_interval(videomae_dir):
    def run(fake):
        metric = CDFVD(load_videomae(videomae_dir), batch_size=3)
        for v in _videos(8, 1):
            metric.update(v, {}, real=True)
        for v in fake:
            metric.update(v, {}, real=False)
        return metric, metric.compute()

    _, same = run(_videos(8, 1))
    assert abs(same["cd_fvd"]) < 1e-6 and same["cd_fvd_clips_real"] == 8
    metric, shifted = run(_videos(8, 1, shift=60))
    assert shifted["cd_fvd"] > 1e-3
    from medsora.metrics.bootstrap import bootstrap_interval

    ci = bootstrap_interval(metric, shifted["cd_fvd"], replicates=50)
    assert ci["low"] <= shifted["cd_fvd"] <= ci["high"]


def _folder(root, videos):
    for i, v in enumerate(videos):
        (root / f"v{i}").mkdir(parents=True)
        for j, frame in enumerate(v.numpy()):
            Image.fromarray(frame).save(root / f"v{i}" / f"{j:02d}.png")


def test_cli_computes_cd_fvd_or_skips_naming_the_folder(videomae_dir, tmp_path, capsys):
    _folder(tmp_path / "real", _videos(4, 2))
    _folder(tmp_path / "fake", _videos(4, 3, shift=40))
    out = tmp_path / "eval.json"
    args = ["--fake", str(tmp_path / "fake"), "--real", str(tmp_path / "real"), "--metrics", "cd_fvd",
            "--no-progress", "--out", str(out), "--bootstrap", "20"]
    assert main(args + ["--videomae", str(videomae_dir)]) == 0
    entry = json.loads(out.read_text())["metrics"]["cd_fvd"]
    assert entry["value"] > 0 and "VideoMAE" in entry["protocol"] and entry["interval"]["replicates"] == 20
    assert main(args + ["--weights-dir", str(tmp_path / "none")]) == 0
    skipped = json.loads(out.read_text())["skipped"]["cd_fvd"]
    assert "videomae-v2" in skipped and "--videomae" in skipped
    assert main(args + ["--weights-dir", str(tmp_path / "none"), "--strict"]) == 2
    assert "videomae-v2" in capsys.readouterr().err
