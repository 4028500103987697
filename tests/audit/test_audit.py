"""Memorisation audit: copies of training clips are flagged on every feature backend, distinct clips are not;
--filter keeps exactly the unflagged samples; unreadable clips are counted and listed; the search is exact."""
from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from medsora.audit import main
from medsora.data.sources import read_video
from medsora.data.video_io import write_gif, write_mp4

FRAMES, H, W = 9, 32, 40


def _texture_video(seed: int) -> np.ndarray:
    """uint8 T×H×W×3: a smooth random colour texture panning in a random direction."""
    g = torch.Generator().manual_seed(seed)
    canvas = F.interpolate(torch.rand(1, 3, 12, 14, generator=g), size=(H + 2 * FRAMES, W + 2 * FRAMES),
                           mode="bicubic", align_corners=False)[0].clamp(0, 1)
    dy, dx = (torch.randint(-1, 2, (2,), generator=g)).tolist()
    frames = [canvas[:, FRAMES + t * dy:FRAMES + t * dy + H, FRAMES + t * dx:FRAMES + t * dx + W] for t in range(FRAMES)]
    return (torch.stack(frames).permute(0, 2, 3, 1) * 255).round().byte().numpy()


@pytest.fixture(scope="module")
def audit_data(tmp_path_factory):
    """24 training videos, 64 held-out videos (manifest split val), one unreadable training file; samples: an exact
    copy, a noisy copy, a 2-pixel shifted copy and a re-encoded (GIF) copy of training clips, three new videos
    and one unreadable file. New videos come from the held-out distribution, so each is flagged with probability
    about max(quantile, 1/(held-out + 1)): 64 held-out clips make that small."""
    root = tmp_path_factory.mktemp("audit")
    data, samples = root / "data", root / "samples"
    (data / "v").mkdir(parents=True)
    samples.mkdir()
    rows = []
    for i in range(88):
        write_mp4(_texture_video(i), data / "v" / f"clip_{i:02d}.mp4", fps=8)
        rows.append({"path": f"v/clip_{i:02d}.mp4", "modality": "endoscopy", "split": "train" if i < 24 else "val"})
    (data / "v" / "broken.mp4").write_bytes(b"not a video")
    rows.append({"path": "v/broken.mp4", "modality": "endoscopy", "split": "train"})
    (data / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    decoded = lambda i: read_video(data / "v" / f"clip_{i:02d}.mp4")[0]  # noqa: E731
    shutil.copy(data / "v" / "clip_00.mp4", samples / "exact.mp4")
    rng = np.random.default_rng(0)
    noisy = np.clip(decoded(1).astype(int) + rng.normal(0, 8, decoded(1).shape).round(), 0, 255).astype(np.uint8)
    write_mp4(noisy, samples / "noisy.mp4", fps=8)
    write_mp4(np.roll(decoded(2), 2, axis=2), samples / "shifted.mp4", fps=8)
    write_gif(decoded(3), samples / "reencoded.gif", fps=8)
    for j in range(3):
        write_mp4(_texture_video(1000 + j), samples / f"new_{j}.mp4", fps=8)
    (samples / "broken.mp4").write_bytes(b"\x00\x01 truncated")
    return data, samples


COPIES = {"exact", "noisy", "shifted", "reencoded"}
NEW = {"new_0", "new_1", "new_2"}


def _rows(out):
    import csv

    with (out / "audit.csv").open() as fh:
        return {r["sample"]: r for r in csv.DictReader(fh)}


def _check(out, summary_extra=""):
    rows = _rows(out)
    assert set(rows) == COPIES | NEW  # the unreadable sample is skipped, not fatal
    flagged = {k for k, r in rows.items() if r["flagged"] == "True"}
    assert flagged == COPIES, summary_extra
    nearest = {k: r["nearest_train"] for k, r in rows.items()}
    assert [nearest[k] for k in ("exact", "noisy", "shifted", "reencoded")] == [f"v/clip_{i:02d}.mp4@0" for i in range(4)]
    summary = json.loads((out / "audit.json").read_text())
    assert summary["flagged"]["count"] == 4 and summary["flagged"]["total"] == 7
    ci = summary["flagged"]["interval"]
    assert ci["low"] <= 4 / 7 <= ci["high"]
    assert summary["train"]["unreadable"] == 1 and summary["samples"]["unreadable"] == 1
    assert any("broken" in u for u in summary["unreadable"]) and "Unreadable clips" in (out / "audit.md").read_text()
    assert (out / "closest_pairs.png").is_file()
    return rows, summary


def test_pixel_backend_flags_copies_not_new_clips_and_filter_keeps_the_rest(audit_data, tmp_path):
    data, samples = audit_data
    out, kept = tmp_path / "audit", tmp_path / "release"
    assert main(["--train", str(data), "--samples", str(samples), "--out", str(out), "--filter", str(kept),
                 "--clips-per-video", "1", "--clip-frames", "9", "--no-progress"]) == 0
    rows, summary = _check(out)
    assert summary["features"]["backend"] == "pixels" and summary["held_out"]["compared"] == 64
    assert sorted(p.name for p in kept.iterdir()) == sorted([f"{k}.mp4" for k in NEW] + ["filter.json"])
    # features are cached: a rerun computes nothing and gives the same table
    parts = sorted(p.name for p in (out / "features").rglob("part-*.npy"))
    assert main(["--train", str(data), "--samples", str(samples), "--out", str(out), "--clips-per-video", "1", "--clip-frames", "9",
                 "--no-progress"]) == 0
    assert sorted(p.name for p in (out / "features").rglob("part-*.npy")) == parts
    assert _rows(out) == rows


def test_vae_backend_flags_copies(audit_data, tmp_path, untrained_vae_ckpt):
    data, samples = audit_data
    torch.manual_seed(0)
    untrained_vae_ckpt([
        "data.root=demo", "vae.latent_channels=4", "vae.block_out_channels=[8,8,8,8]", "vae.layers_per_block=1",
        "vae.norm_num_groups=4", "vae.freq_hidden=8", "vae.lpips='off'", "vae.scaling_factor=0.5"])
    out = tmp_path / "audit"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        assert main(["--train", str(data), "--samples", str(samples), "--out", str(out), "--vae",
                     str(tmp_path / "vae.ckpt"), "--clips-per-video", "1", "--clip-frames", "9", "--no-progress"]) == 0
    _, summary = _check(out)
    assert summary["features"]["backend"] == "vae"


def test_encoder_backend_flags_copies(audit_data, tmp_path):
    from transformers import VideoMAEConfig, VideoMAEModel

    data, samples = audit_data
    torch.manual_seed(0)
    config = VideoMAEConfig(image_size=32, patch_size=16, num_channels=3, num_frames=4, tubelet_size=2,
                            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    VideoMAEModel(config).save_pretrained(tmp_path / "videomae")
    out = tmp_path / "audit"
    assert main(["--train", str(data), "--samples", str(samples), "--out", str(out), "--encoder",
                 str(tmp_path / "videomae"), "--clips-per-video", "1", "--clip-frames", "9", "--no-progress"]) == 0
    _, summary = _check(out)
    assert summary["features"]["backend"] == "encoder"


def test_chunked_search_is_exact_and_blocks_do_not_matter():
    from medsora.memorisation.search import nearest

    rng = np.random.default_rng(0)
    train = rng.normal(size=(1000, 16)).astype(np.float32)
    queries = rng.normal(size=(20, 16)).astype(np.float32)
    ids = [f"t{i}" for i in range(1000)]
    full = np.sqrt(((queries[:, None] - train[None]) ** 2).sum(-1))
    want = np.sort(full, 1)[:, :3]
    parts = [(train[:300], ids[:300]), (train[300:], ids[300:])]
    dist, got = nearest(queries, parts, k=3, block=64, use_faiss=False)
    np.testing.assert_allclose(dist, want, rtol=1e-4, atol=1e-4)
    assert [g[0] for g in got] == [f"t{i}" for i in full.argmin(1)]


def test_no_held_out_clips_is_explained(tmp_path, audit_data):
    from medsora.memorisation.calibrate import threshold_from_held_out

    with pytest.raises(ValueError, match="held-out"):
        threshold_from_held_out(np.array([]))
    assert main(["--train", str(tmp_path / "missing"), "--samples", str(audit_data[1]), "--out",
                 str(tmp_path / "o"), "--no-progress"]) == 2


@pytest.mark.slow
def test_encode_cache_as_training_set_uses_its_latents(tmp_path, untrained_vae_ckpt):
    """--train CACHE: the cache's train split is indexed from its stored latents (VAE backend), its val split
    calibrates; a copy of a cached training video is flagged."""
    from medsora.data.demo import ensure_demo
    from medsora.encode import main as encode_main

    tiny = ["data.root=demo", "data.demo_clips=16", "data.size=32", "data.num_frames=5", "data.batch_size=2",
            "data.val_fraction=0.25", "vae.latent_channels=4", "vae.block_out_channels=[8,8,8,8]",
            "vae.layers_per_block=1", "vae.norm_num_groups=4", "vae.freq_hidden=8", "align.teacher.weights=random",
            "align.teacher.iters=1", "vae.lpips='off'", "vae.scaling_factor=0.25"]
    torch.manual_seed(0)
    untrained_vae_ckpt(tiny)
    cache = tmp_path / "cache"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        encode_main([*tiny, f"vae.ckpt={tmp_path / 'vae.ckpt'}", f"data.cache={cache}", "--device", "cpu",
                     "--no-progress"])
    from medsora.memorisation.clips import from_cache

    sets = from_cache(cache)  # the 16-clip demo set has no val rows: 2 train clips are held out
    assert len(sets.train) == 14 and len(sets.held_out) == 2 and sets.clip_frames == 5
    assert "no val split" in sets.held_out_source
    demo = ensure_demo(num_clips=16)
    samples = tmp_path / "samples"
    samples.mkdir()
    shutil.copy(sets.train[0].path, samples / "copy.mp4")
    out = tmp_path / "audit"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        assert main(["--train", str(cache), "--samples", str(samples), "--out", str(out), "--vae",
                     str(tmp_path / "vae.ckpt"), "--no-progress"]) == 0
    rows = _rows(out)
    assert rows["copy"]["nearest_train"] == sets.train[0].id
    assert demo.is_dir()
