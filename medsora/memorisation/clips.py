"""Which clips the audit compares: training and held-out clips of a data folder or an encode cache, samples.

A :class:`ClipRef` names one clip: a source video, its first frame, stride and length
(``frames=0``: the whole video, as for generated samples), and for an encode cache the
split and item whose stored latents are the clip's VAE features.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional

import numpy as np

__all__ = ["ClipRef", "ClipSets", "from_cache", "from_data_root", "from_samples", "read_clip", "training_sets"]


@dataclasses.dataclass(frozen=True)
class ClipRef:
    id: str
    path: str
    start: int = 0
    stride: int = 1
    frames: int = 0  # 0: every frame of the video
    cache_item: Optional[tuple[str, int]] = None  # (split, index) in an encode cache


@dataclasses.dataclass
class ClipSets:
    train: list[ClipRef]
    held_out: list[ClipRef]
    held_out_source: str  # how the held-out clips were chosen
    cache_root: Optional[Path] = None
    clip_frames: int = 17
    clip_size: int = 64


def read_clip(ref: ClipRef) -> np.ndarray:
    """uint8 T×H×W×3 frames of the clip (frames past the end repeat the last one, as the data pipeline pads);
    raises ``UnreadableVideo``."""
    from medsora.data.sources import probe_video, read_video

    if ref.frames == 0:
        return read_video(ref.path)[0]
    total = probe_video(ref.path).get("num_frames") or 0
    if total <= 0:  # a container without a frame count: read everything once
        frames = read_video(ref.path)[0]
        idx = [min(ref.start + i * ref.stride, frames.shape[0] - 1) for i in range(ref.frames)]
        return frames[idx]
    return read_video(ref.path, indices=[min(ref.start + i * ref.stride, total - 1) for i in range(ref.frames)])[0]


def _windows(key: str, path: Path, num_frames: int, frames: int, stride: int, per_video: int) -> list[ClipRef]:
    span = (frames - 1) * stride + 1
    last = max(0, num_frames - span)
    starts = sorted({int(s) for s in np.linspace(0, last, max(1, per_video)).round()})
    return [ClipRef(f"{key}@{s}", str(path), s, stride, frames) for s in starts]


def from_data_root(root: str | Path, frames: int = 17, stride: int = 1, clips_per_video: int = 4,
                   held_out_fraction: float = 0.1, seed: int = 0) -> ClipSets:
    """Clips of a data folder (manifest or scan): ``clips_per_video`` evenly spaced windows of ``frames`` frames at
    ``stride`` per video. Held out: the manifest's val/test videos, else a seeded ``held_out_fraction`` of them."""
    from medsora.data.manifest import load_entries
    from medsora.data.sources import UnreadableVideo, probe_video

    entries = load_entries(Path(root))
    marked = [e for e in entries if e.split in ("val", "test")]
    if marked:
        held = {e.key for e in marked}
        source = f"the manifest's val/test videos ({len(held)})"
    else:
        count = max(1, round(held_out_fraction * len(entries))) if len(entries) > 1 else 0
        order = np.random.default_rng(seed).permutation(len(entries))
        held = {entries[i].key for i in order[:count]}
        source = f"a seeded {held_out_fraction:.0%} of the videos ({len(held)}, seed {seed}); no manifest split"
    train, held_out = [], []
    for e in entries:
        try:
            num = int(probe_video(e.path).get("num_frames") or 0)
        except UnreadableVideo:
            num = 0  # read later, where it is counted as unreadable
        refs = _windows(e.key, e.path, num, frames, stride, clips_per_video)
        (held_out if e.key in held else train).extend(refs)
    return ClipSets(train, held_out, source, clip_frames=frames)


def from_cache(cache_root: str | Path, held_out_fraction: float = 0.1, seed: int = 0) -> ClipSets:
    """Clips of an encode cache: its train split is the training set, its val split the held-out clips (without
    one, a seeded ``held_out_fraction`` of the train clips, left out of the index). Each clip's VAE features are
    its stored latents; the pixel and encoder backends read the source video it came from."""
    from safetensors import safe_open

    from medsora.data.cache import read_manifest, shard_path, shard_plan

    root = Path(cache_root)
    manifest = read_manifest(root)
    data = manifest["fingerprint"]["data"]
    if str(data["root"]) == "demo":
        from medsora.data.demo import demo_folder

        data_root = demo_folder(seed=int(data.get("demo_seed", 0)), num_clips=int(data.get("demo_clips", 100)))
    else:
        data_root = Path(str(data["root"])).expanduser()
    sets: dict[str, list[ClipRef]] = {"train": [], "val": []}
    for split in sets:
        if split not in manifest["splits"]:
            continue
        plan = shard_plan(manifest["splits"][split]["num_items"], manifest["splits"][split]["shard_size"])
        for number, (start, _) in enumerate(plan):
            with safe_open(str(shard_path(root, split, number)), framework="pt") as fh:
                records = json.loads(fh.metadata()["records"])
            for row, record in enumerate(records):
                path = str(record["path"])
                full = Path(path) if Path(path).is_absolute() else data_root / path
                # the cache keeps no clip offset: the pixel/encoder backends read the video's first clip
                sets[split].append(ClipRef(f"{split}:{start + row}:{path}", str(full), 0, int(data["frame_stride"]),
                                           int(data["num_frames"]), (split, start + row)))
    train, held, source = sets["train"], sets["val"], f"the cache's val split ({len(sets['val'])} clips)"
    if not held and len(train) > 1:  # no val split: hold out a seeded 10 % of the train clips (not indexed)
        order = np.random.default_rng(seed).permutation(len(train))
        out = set(order[: max(1, round(held_out_fraction * len(train)))].tolist())
        held = [r for i, r in enumerate(train) if i in out]
        train = [r for i, r in enumerate(train) if i not in out]
        source = f"a seeded {held_out_fraction:.0%} of the cache's train clips ({len(held)}, seed {seed}); no val split"
    return ClipSets(train, held, source, root, int(data["num_frames"]), int(data["size"]))


def training_sets(train: str | Path, **window_args) -> ClipSets:
    """A data folder or an encode cache (a folder holding the cache's ``manifest.json``)."""
    path = Path(train).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"--train {path}: no such folder (a data folder or an encode cache)")
    manifest = path / "manifest.json"
    if manifest.is_file() and "fingerprint" in json.loads(manifest.read_text(encoding="utf-8")):
        return from_cache(path, seed=window_args.get("seed", 0))
    return from_data_root(path, **window_args)


def from_samples(folder: str | Path) -> list[ClipRef]:
    """Every generated video of ``folder`` (mp4 preferred over its gif twin), whole."""
    from medsora.metrics.video_sets import list_videos, video_key

    root, videos = list_videos(folder)
    return [ClipRef(video_key(v, root), str(v)) for v in videos]
