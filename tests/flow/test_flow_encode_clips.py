"""data.clips_per_video in the encode cache: every clip of a long video is kept, as online."""
from __future__ import annotations

import warnings

import av
import numpy as np
import torch

from medsora.config import compose
from medsora.data.cache import CacheDataset
from medsora.encode import clip_datasets, encode_cache
from medsora.flow import FlowTeacher
from medsora.vae.model import FreqCompVAE

TINY = ["data.size=32", "data.num_frames=5", "data.frame_stride=2", "data.batch_size=2", "data.val_fraction=0",
        "data.num_workers=0", "vae.latent_channels=4", "vae.block_out_channels=[8,8,8,8]", "vae.layers_per_block=1",
        "vae.norm_num_groups=4", "vae.freq_hidden=8", "align.teacher.weights=random", "align.teacher.iters=1"]


def _long_video(path, frames: int = 40) -> None:
    y, x = np.mgrid[0:48, 0:64]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264rgb", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "rgb24"
        stream.options = {"qp": "0"}
        for t in range(frames):  # brightness ramps with time: every clip of the video is different
            frame = np.stack([(x * 3 + t * 5) % 256, (y * 4) % 256, np.full_like(x, t * 6)], -1).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_a_cache_of_two_long_videos_holds_clips_per_video_clips_each(tmp_path):
    (tmp_path / "videos" / "endoscopy").mkdir(parents=True)
    for name in ("a", "b"):
        _long_video(tmp_path / "videos" / "endoscopy" / f"{name}.mp4")
    # 40 frames, clips spanning 9 (5 frames at stride 2): 4 windows per video
    base = [*TINY, f"data.root={tmp_path / 'videos'}"]
    windows = clip_datasets(compose(overrides=[*base, "data.clips_per_video=all"]).data, ["train"])["train"]
    assert len(windows) == 8 and [s[1:] for s in windows.slots[:4]] == [(0, 4), (1, 4), (2, 4), (3, 4)]

    cfg = compose(overrides=[*base, "data.clips_per_video=3", f"data.cache={tmp_path / 'cache'}"])
    torch.manual_seed(0)
    vae = FreqCompVAE.from_config(cfg.vae).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        teacher = FlowTeacher.from_config(cfg.align)
    stats = encode_cache(cfg, vae, 1.0, teacher, "sha-vae", splits=["train"], shard_size=4, progress=False)
    cache = CacheDataset(tmp_path / "cache", "train")
    items = [cache[i] for i in range(len(cache))]
    assert stats["clips"] == 6 and len(cache) == 6
    assert [(i["path"], i["clip"]) for i in items] == [(f"endoscopy/{v}.mp4", k) for v in "ab" for k in range(3)]
    means = torch.stack([i["latent_mean"] for i in items[:3]])
    assert not torch.allclose(means[0], means[1]) and not torch.allclose(means[1], means[2])  # three different clips
    assert cache.manifest["fps"] == 12.5  # 25 fps at stride 2


def test_training_draws_each_clip_at_random_within_its_window_seeded_by_epoch():
    from medsora.data.clips import clip_start

    starts = [[clip_start(40, 9, True, torch.Generator().manual_seed(e * 10 + k), clip=k, count=3) for k in range(3)]
              for e in range(20)]
    # the 32 valid starts cut into 3 strata: 0-9, 10-20, 21-31; evaluation takes 0, 16, 31
    assert all(0 <= a <= 9 < 10 <= b <= 20 < 21 <= c <= 31 for a, b, c in starts)
    assert len({tuple(s) for s in starts}) > 10
    assert [clip_start(40, 9, False, clip=k, count=3) for k in range(3)] == [0, 16, 31]
