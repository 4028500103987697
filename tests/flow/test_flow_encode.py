"""python -m medsora.encode: cached latents/targets equal the online ones; resumable; sharded by rank."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch.utils.data import Subset

from medsora.config import ConfigError, compose
from medsora.data.cache import CacheDataset, IncompleteCacheError, shard_path
from medsora.encoding.fingerprint import run_fingerprint
from medsora.encode import clip_datasets, encode_cache
from medsora.flow import FlowTeacher, token_grid
from medsora.vae.model import FreqCompVAE

TINY = ["data.root=demo", "data.demo_clips=4", "data.size=32", "data.num_frames=5", "data.batch_size=2",
        "vae.latent_channels=4", "vae.block_out_channels=[8,8,8,8]",
        "vae.layers_per_block=1", "vae.norm_num_groups=4", "vae.freq_hidden=8",
        "align.teacher.weights=random", "align.teacher.iters=1"]


@pytest.fixture(scope="module")
def parts():
    cfg = compose(overrides=TINY)
    torch.manual_seed(0)
    vae = FreqCompVAE.from_config(cfg.vae).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        teacher = FlowTeacher.from_config(cfg.align)
    train = clip_datasets(cfg.data, ["train"])["train"]  # the demo's 4 clips are all in its train split
    # RAFT runs at >= 128 px, so keep the clip count small: 3 clips as "train", 1 as "val".
    return cfg, vae, teacher, {"train": Subset(train, [0, 1, 2]), "val": Subset(train, [3])}


def _cfg(root, *extra):
    return compose(overrides=[*TINY, f"data.cache={root}", *extra])


def test_cache_equals_online_and_resumes(parts, tmp_path):
    _, vae, teacher, datasets = parts
    cfg = _cfg(tmp_path)
    run = dict(shard_size=2, progress=False, datasets=datasets)
    first = encode_cache(cfg, vae, 0.5, teacher, "sha-vae", rank=0, world_size=2, **run)
    with pytest.raises(IncompleteCacheError):
        CacheDataset(tmp_path, "train")
    second = encode_cache(cfg, vae, 0.5, teacher, "sha-vae", rank=1, world_size=2, **run)
    assert (first["written"], second["written"]) == (2, 1)  # shards train/0, val/0 | train/1

    clips = [ds[i] for ds in datasets.values() for i in range(len(ds))]
    cached = [CacheDataset(tmp_path, s, expect=run_fingerprint(cfg, vae_sha256="sha-vae")) for s in datasets]
    items = [c[i] for c in cached for i in range(len(c))]
    assert [len(c) for c in cached] == [3, 1] and cached[0].scaling_factor == 0.5
    video = torch.stack([clip["video"] for clip in clips])  # the online path, as training runs it
    with torch.no_grad():
        posterior = vae.encode(video)
    online = {"latent_mean": posterior.mean, "latent_std": posterior.std,
              "flow": teacher.targets(video, token_grid(5, 32, 32))}
    for key, value in online.items():
        torch.testing.assert_close(torch.stack([item[key] for item in items]), value, rtol=1e-4, atol=1e-5)
    records = ("caption", "modality", "path")
    for clip, item in zip(clips, items):
        assert {k: item[k] for k in records} == {k: clip[k] for k in records}

    before = CacheDataset(tmp_path, "train")[0]["flow"]
    shard_path(tmp_path, "train", 0).unlink()
    shard_path(tmp_path, "train", 1).write_bytes(b"interrupted")
    again = encode_cache(cfg, vae, 0.5, teacher, "sha-vae", **run)
    assert again["written"] == 2 and again["skipped"] == 1
    torch.testing.assert_close(CacheDataset(tmp_path, "train")[0]["flow"], before)


def test_a_folder_made_with_other_settings_is_refused(parts, tmp_path):
    _, vae, teacher, datasets = parts
    encode_cache(_cfg(tmp_path), vae, 0.5, teacher, "sha-vae", shard_size=4, progress=False,
                 datasets={"val": datasets["val"]})
    with pytest.raises(ConfigError, match="vae.ckpt_sha256: cache has 'sha-vae', this run expects 'other'"):
        encode_cache(_cfg(tmp_path), vae, 0.5, teacher, "other", shard_size=4, progress=False,
                     datasets={"val": datasets["val"]})
    with pytest.raises(ConfigError, match="align.patch: cache has 2, this run expects 1"):
        encode_cache(_cfg(tmp_path, "model.patch=1"), vae, 0.5, teacher, "sha-vae", shard_size=4,
                     progress=False, datasets={"val": datasets["val"]})


def test_command_line_encodes_then_resumes(tmp_path, untrained_vae_ckpt):
    from medsora.encode import main
    from medsora.flow.raft_weights import file_sha256

    overrides = [*TINY, "vae.lpips='off'", "vae.scaling_factor=0.25", f"data.cache={tmp_path / 'cache'}"]
    untrained_vae_ckpt(overrides)
    overrides.append(f"vae.ckpt={tmp_path / 'vae.ckpt'}")
    args = [*overrides, "--splits", "train", "--shard-size", "3", "--batch-size", "4", "--device", "cpu",
            "--no-progress"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        first = main(args)
        again = main(args)
    assert (first["written"], first["clips"]) == (2, 4) and (again["written"], again["skipped"]) == (0, 2)
    cfg = compose(overrides=overrides)
    cache = CacheDataset(cfg.data.cache, "train", expect=run_fingerprint(cfg))  # hashes vae.ckpt itself
    assert cache.fingerprint["vae"]["ckpt_sha256"] == file_sha256(tmp_path / "vae.ckpt")
    assert cache.scaling_factor == 0.25 and len(cache) == 4 and cache[3]["flow"].shape == (2, 2, 2, 178)


def test_caption_features_are_encoded_with_the_clips(parts, tmp_path):
    """cond.text: each clip's caption (template where empty) goes through T5 once, at encode time."""
    from medsora.cond import T5TextEncoder, save_tiny_t5, text_encoder_identity
    from medsora.encode import encode_captions

    _, vae, teacher, datasets = parts
    t5_dir = save_tiny_t5(tmp_path / "t5")
    cfg = _cfg(tmp_path / "cache", "cond=text", f"cond.text_encoder={t5_dir}", "cond.max_tokens=12")
    t5 = T5TextEncoder.from_config(cfg.cond)
    run = dict(shard_size=2, progress=False, datasets=datasets)
    encode_cache(cfg, vae, 0.5, teacher, "sha-vae", text_encoder=t5, text_dtype="float32", **run)
    cache = CacheDataset(cfg.data.cache, "train")
    assert cache.manifest["text"] == {"text_encoder": text_encoder_identity(t5_dir), "max_tokens": 12,
                                      "template": cfg.cond.template, "dim": t5.dim, "dtype": "float32"}
    for i in range(len(cache)):
        item = cache[i]
        want, = encode_captions(t5, cfg.cond, [item["caption"]], [item["modality"]], "cpu", torch.float32)
        assert item["text_hidden"].shape == want.shape and want.shape[0] > 0
        torch.testing.assert_close(item["text_hidden"], want, atol=1e-5, rtol=1e-5)
    # the same folder without caption features is another cache: refused, not silently mixed
    with pytest.raises(ConfigError, match="text: cache has caption features"):
        encode_cache(cfg, vae, 0.5, teacher, "sha-vae", **run)


def test_command_line_with_text_conditioning(tmp_path, untrained_vae_ckpt):
    """cond.text on the command line: caption features are written; without a T5 folder, a clear error."""
    from medsora.cond import save_tiny_t5
    from medsora.encode import main

    overrides = [*TINY, "vae.lpips='off'", "vae.scaling_factor=0.25", f"data.cache={tmp_path / 'cache'}", "cond=text"]
    untrained_vae_ckpt(overrides)
    overrides.append(f"vae.ckpt={tmp_path / 'vae.ckpt'}")
    flags = ["--splits", "train", "--device", "cpu", "--no-progress"]
    with pytest.raises(ConfigError, match="cond.text_encoder is not set"):
        main([*overrides, *flags])
    t5 = save_tiny_t5(tmp_path / "t5")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        stats = main([*overrides, f"cond.text_encoder={t5}", *flags])
    cache = CacheDataset(tmp_path / "cache", "train")
    assert stats["clips"] == len(cache) >= 1 and cache.has_text
    assert cache.manifest["text"]["dtype"] == "bfloat16" and cache[0]["text_hidden"].shape[1] == 32
