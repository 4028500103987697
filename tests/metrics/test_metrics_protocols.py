"""Evaluation protocols: the shipped files compose, bad files fail naming the key, clips follow the protocol,
too few videos is refused (or labelled with --allow-fewer), the sampler is checked against samples.json."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from medsora.config.loader import ConfigError
from medsora.evaluate import main
from medsora.evaluation.protocol import ClipSpec, clip_video, list_protocols, load_protocol


def test_shipped_protocols_compose_with_their_pinned_settings():
    assert {"stylegan_v", "endora", "medsora"} <= set(list_protocols())
    sg, endora, medsora = (load_protocol(n) for n in ("stylegan_v", "endora", "medsora"))
    assert (sg.num_videos, sg.clip.frames, sg.clip.stride, sg.clip.resize) == (2048, 16, 1, None)
    assert endora.num_videos == 1024 and endora.clip.resize == 128 and endora.clip.crop == "center"
    assert (medsora.num_videos, medsora.sampling.sampler, medsora.sampling.steps, medsora.sampling.ema) == \
        (2048, "ddpm", 250, True)
    assert "fvd" in sg.metrics and "cd_fvd" in medsora.metrics and "kid" in endora.metrics


@pytest.mark.parametrize("body, needle", [
    ("name: x\nnum_videos: 4\nframes: 16\n", "'frames'"),  # unknown key (belongs under clip:)
    ("name: x\nnum_videos: 4\nclip:\n  stirde: 2\n", "'clip.stirde'"),
    ("name: x\nnum_videos: 0\n", "'num_videos' = 0"),
    ("name: x\nnum_videos: 4\nclip:\n  crop: diagonal\n", "'clip.crop'"),
    ("name: x\nnum_videos: 4\nmetrics: [fvd, fancy]\n", "fancy"),
    ("name: x\nnum_videos: 4\nclip:\n  crop: center\n", "clip.resize"),
    ("num_videos: 4\n", "name"),
])
def test_bad_protocol_files_fail_naming_the_key_and_file(tmp_path, body, needle):
    path = tmp_path / "mine.yaml"
    path.write_text(body)
    with pytest.raises(ConfigError) as err:
        load_protocol(str(path))
    assert needle in str(err.value) and str(path) in str(err.value)


def test_clip_follows_frames_stride_resize_and_crop():
    video = torch.arange(20).view(20, 1, 1, 1).expand(20, 30, 40, 3).to(torch.uint8).contiguous()
    clip = clip_video(video, ClipSpec(frames=4, stride=3, start=2, resize=16, crop="center"))
    assert clip.shape == (4, 16, 16, 3) and clip[:, 0, 0, 0].tolist() == [2, 5, 8, 11]
    assert clip_video(video, ClipSpec(frames=4, stride=3, start=12)) is None  # needs frame 21
    assert clip_video(video, ClipSpec(frames=2, resize=15)).shape == (2, 15, 20, 3)


def _frames(folder, video):
    folder.mkdir(parents=True)
    for i, frame in enumerate(video):
        Image.fromarray(frame).save(folder / f"{i:03d}.png")


@pytest.fixture
def sets(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("real", "fake"):
        for i in range(5):
            _frames(tmp_path / split / f"v{i}", rng.integers(0, 255, (6 if i else 2, 16, 16, 3), dtype=np.uint8))
    return tmp_path


def _protocol(tmp_path, num, **extra):
    path = tmp_path / "p.yaml"
    lines = ["name: tiny", f"num_videos: {num}", "metrics: [temporal_flickering]", "clip:", "  frames: 4",
             "bootstrap:", "  replicates: 50"] + [f"{k}: {v}" for k, v in extra.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_too_few_videos_is_refused_and_allow_fewer_labels_the_result(sets, tmp_path, capsys):
    # 5 videos per set, one shorter than the 4-frame clip: 4 usable
    args = ["--fake", str(sets / "fake"), "--real", str(sets / "real"), "--no-progress"]
    assert main(args + ["--protocol", str(_protocol(tmp_path, 5))]) == 2
    err = capsys.readouterr().err
    assert "protocol 'tiny' needs 5 usable videos" in err and "4 fake" in err and "--allow-fewer" in err
    out = tmp_path / "eval.json"
    assert main(args + ["--protocol", str(_protocol(tmp_path, 5)), "--allow-fewer", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    label = report["protocol"]["label"]
    assert label != "tiny" and "incomplete" in label and report["protocol"]["complete"] is False
    assert report["protocol"]["used"]["num_fake"] == 4 and len(report["protocol"]["used"]["too_short"]) == 1
    assert "does NOT follow the protocol" in out.with_suffix(".md").read_text()
    # four videos asked: the protocol is followed and named
    assert main(args + ["--protocol", str(_protocol(tmp_path, 4)), "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["protocol"]["label"] == "tiny" and report["protocol"]["requested"]["clip"]["frames"] == 4
    entry = report["metrics"]["temporal_flickering"]
    assert entry["interval"]["replicates"] == 50 and entry["interval"]["low"] <= entry["value"]


def test_sampler_is_checked_against_samples_json(sets, tmp_path, capsys):
    (sets / "fake" / "samples.json").write_text(json.dumps({"sampler": "ddim", "steps": 50}))
    path = _protocol(tmp_path, 4)
    path.write_text(path.read_text() + "sampling:\n  sampler: ddpm\n  steps: 250\n")
    assert main(["--fake", str(sets / "fake"), "--real", str(sets / "real"), "--protocol", str(path),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "ddpm" in err and "samples.json" in err and "--steps 250" in err
