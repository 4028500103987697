"""``evaluate`` pairs a clip reconstruction with the same source frames and the same crop, or refuses it (#17 item 6)."""
from __future__ import annotations

import json

import numpy as np
from PIL import Image

from medsora.data.transforms import preprocess_frames
from medsora.evaluate import main
from medsora.metrics.base import to_uint8_frames


def _save(folder, frames):
    folder.mkdir(parents=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:03d}.png")


def test_clip_reconstruction_is_compared_on_its_frames_and_crop_or_refused(tmp_path, capsys):
    y, x = np.meshgrid(np.linspace(0, 1, 48), np.linspace(0, 1, 64), indexing="ij")
    source = np.stack([np.stack([np.sin(6 * x + k), np.cos(5 * y - k), np.sin(4 * (x + y) + k / 2)], -1)
                       for k in range(12)])
    source = ((source + 1) * 127.5).round().astype(np.uint8)  # 12×48×64×3
    clip = preprocess_frames(source[[1, 3, 5, 7, 9]], size=32)  # what the data pipeline makes: stride 2 from 1
    _save(tmp_path / "real" / "v", source)
    _save(tmp_path / "fake" / "v", to_uint8_frames(clip[None])[0].numpy())
    out = tmp_path / "eval.json"
    args = ["--fake", str(tmp_path / "fake"), "--real", str(tmp_path / "real"), "--metrics", "psnr", "--no-progress",
            "--out", str(out)]
    assert main(args) == 0
    report = json.loads(out.read_text())
    assert "psnr" not in report["metrics"] and "--pair-stride" in report["unpaired"][0]
    assert "not compared" in capsys.readouterr().err
    assert main(args + ["--strict"]) == 2
    assert main(args + ["--pair-start", "1", "--pair-stride", "2"]) == 0
    psnr = json.loads(out.read_text())["metrics"]["psnr"]
    assert psnr["value"] > 45 and psnr["details"]["psnr_pairs"] == 1
