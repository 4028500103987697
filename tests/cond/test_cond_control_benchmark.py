"""benchmarks/control.py's pixel measures: the pulsation-rate estimator and the VAE gain-transfer probe."""
from __future__ import annotations

import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def control(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH.parent))
    from benchmarks import control
    return control


def _pulsing(bpm: float, frames: int = 17, fps: float = 15.0, phase: float = 0.3) -> torch.Tensor:
    t = torch.arange(frames, dtype=torch.float32)
    level = 0.1 * torch.sin(2 * math.pi * bpm / 60 / fps * t + phase)
    return torch.randn(3, 1, 8, 8).mul(0.2) + level[None, :, None, None]


@pytest.mark.parametrize("bpm", [50, 80, 120])
def test_measured_rate_finds_the_pulsation_of_a_17_frame_clip(control, bpm):
    assert abs(control.measured_rate(_pulsing(bpm)) - bpm) <= 8


class _Identity:
    """encode(x).mean == x, decode(z) == z: passes every brightness change."""

    def encode(self, video):
        return SimpleNamespace(mean=video)

    def decode(self, z):
        return z


class _PerFrameNormalised(_Identity):
    """Standardises every frame (what per-frame GroupNorm does to a frame's gain), then restores a fixed scale."""

    def decode(self, z):
        mean = z.mean(dim=(1, 3, 4), keepdim=True)
        std = z.std(dim=(1, 3, 4), keepdim=True)
        return (z - mean) / std * 0.3


def test_gain_transfer_is_one_for_a_transparent_vae_and_zero_for_per_frame_normalisation(control):
    video = torch.rand(6, 3, 17, 8, 8) * 2 - 1
    assert control.gain_transfer(_Identity(), video) == pytest.approx(1.0, abs=1e-5)
    assert abs(control.gain_transfer(_PerFrameNormalised(), video)) < 1e-4


def _args(control, tmp_path, *argv):
    parser_args = SimpleNamespace(work=str(tmp_path), vae_steps=control.VAE_STEPS, steps=10, overrides=[])
    for key, value in zip(argv[::2], argv[1::2]):
        setattr(parser_args, key, value)
    return parser_args


def test_control_vae_has_the_colour_shortcut_and_resumes_its_own_run(control, tmp_path):
    cfg = control.vae_config(_args(control, tmp_path, "vae_steps", 250))
    assert cfg.stage == "vae" and cfg.vae.shortcut is True and cfg.data.size == 32
    assert cfg.train.lr_schedule == "constant"  # the schedule its RESULTS figures were measured with
    assert cfg.trainer.max_steps == 250 and cfg.ckpt is None and cfg.name == "control_vae"
    ckpt = tmp_path / "runs" / "control_vae" / "version_0" / "checkpoints" / "step=100.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"x")
    assert control.vae_config(_args(control, tmp_path, "vae_steps", 250)).ckpt == "last"


def test_each_vae_gets_its_own_encode_cache(control, tmp_path):
    a, b = tmp_path / "a.ckpt", tmp_path / "b.ckpt"
    a.write_bytes(b"first vae")
    b.write_bytes(b"second vae")
    cache_a = control.compose_run(_args(control, tmp_path, "vae", str(a)))[0].data.cache
    cache_b = control.compose_run(_args(control, tmp_path, "vae", str(b)))[0].data.cache
    assert cache_a != cache_b and Path(cache_a).parent == Path(cache_b).parent == tmp_path / "cache"
    assert control.compose_run(_args(control, tmp_path, "vae", str(a)))[0].data.cache == cache_a


def test_heart_rate_stage_two_trains_the_stage_one_weights_on_the_ultrasound_rows(control, tmp_path):
    import json

    from medsora.data.demo import MODALITIES

    root = tmp_path / "data"
    root.mkdir()
    rows = [{"path": f"{m}/{m}_000.mp4", "caption": m, "modality": m, "split": "train"} for m in MODALITIES]
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    vae, stage1 = tmp_path / "vae.ckpt", tmp_path / "stage1.ckpt"
    vae.write_bytes(b"vae")
    stage1.write_bytes(b"weights")
    args = _args(control, tmp_path, "vae", str(vae), "hr_batch", 12, "hr_steps", 400, "overrides", [f"data.root={root}"])
    base = control.compose_run(args)[0]
    cfg, overrides = control.compose_hr_run(args, base, stage1)
    manifest = Path(cfg.data.manifest)
    assert [json.loads(line)["modality"] for line in manifest.read_text().splitlines()] == ["ultrasound"]
    assert json.loads(manifest.read_text())["path"] == "ultrasound/ultrasound_000.mp4"  # still relative to the root
    assert cfg.train.init_from == str(stage1) and cfg.name == "attr_demo_hr"
    assert cfg.data.batch_size == 12 and cfg.trainer.max_steps == 400
    assert list(cfg.cond.modalities) == sorted(MODALITIES)  # the stage-1 modality table, not just ultrasound
    assert cfg.data.cache != base.data.cache and Path(cfg.data.cache).parent == Path(base.data.cache).parent
    assert cfg.data.root == str(root)  # the clips themselves stay where the data set is
