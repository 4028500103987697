"""``python -m medsora.encode``: precompute VAE latents and flow targets into an encode cache.

    python -m medsora.encode experiment=NAME vae.ckpt=PATH data.cache=OUT [key=value ...]
    torchrun --nproc-per-node 8 -m medsora.encode experiment=NAME vae.ckpt=PATH data.cache=OUT

One pass over the train and val splits: each clip (``data.clips_per_video`` evenly spaced clips
of every video — the central one by default — centre crop, as in validation) goes through the frozen VAE encoder (posterior mean
and std, unscaled) and the frozen flow teacher (``align.*`` targets on the token grid);
with ``cond.text`` its caption (the ``cond.template`` where empty) goes through the frozen
T5 of ``cond.text_encoder`` (features of the real tokens, ``--text-dtype``), so that
training never loads T5; results are written as shards (see :mod:`medsora.data.cache`). Shards are distributed
round-robin over ranks (``--rank/--world-size``, or torchrun's ``RANK``/``WORLD_SIZE``); a
finished shard is never recomputed, so re-running the same command resumes. A cache folder
made with other settings is refused with the list of differences.
"""
from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path
from typing import Optional, Sequence

import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from medsora.config import ConfigError, add_config_dir_argument, compose, use_config_dirs
from medsora.data.datamodule import default_workers
from medsora.data.cache import (
    MANIFEST, fingerprint_differences, read_manifest, shard_items, shard_path, shard_plan, write_manifest,
    write_shard,
)
from medsora.encoding.fingerprint import run_fingerprint
from medsora.flow.latent_grid import token_grid
from medsora.flow.teacher import FlowTeacher

log = logging.getLogger("medsora.encode")

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def clip_datasets(data_cfg, splits: Sequence[str]) -> dict:
    """Deterministic clip datasets per split (central clip, centre crop), from the data module's split.

    ``data.cache`` is ignored here: these are the videos a cache is made from.
    """
    from medsora.data.datamodule import VideoDataModule
    from medsora.data.dataset import VideoClipDataset

    source_cfg = data_cfg.copy()
    OmegaConf.set_readonly(source_cfg, False)
    source_cfg.cache = None
    dm = VideoDataModule(source_cfg)
    dm.prepare_data()
    dm.setup("fit")
    sets = {"train": dm.train_set, "val": dm.val_set}
    unknown = [s for s in splits if s not in sets]
    if unknown:
        raise ConfigError(f"--splits: unknown split(s) {unknown} (choose from {sorted(sets)})")
    return {s: VideoClipDataset(dm.table, sets[s].indices, sets[s].settings, train=False) for s in splits}


def plan_manifest(root: Path, manifest: dict, rank: int) -> None:
    """Check an existing manifest against this run's, or (rank 0) write it.

    Raises:
        ConfigError: the folder holds a cache made from something else.
    """
    if (root / MANIFEST).is_file():
        found = read_manifest(root)
        diffs = fingerprint_differences(found.get("fingerprint", {}), manifest["fingerprint"])
        diffs += fingerprint_differences({"splits": found.get("splits", {})}, {"splits": manifest["splits"]})
        if found.get("text") != manifest["text"]:
            diffs.append(f"text: cache has caption features {found.get('text')!r}, this run makes {manifest['text']!r}")
        if diffs:
            raise ConfigError(
                f"data.cache={root} already holds a cache made with other settings:\n  - " + "\n  - ".join(diffs)
                + "\nChoose another data.cache folder, or delete this one to rebuild it."
            )
    elif rank == 0:
        write_manifest(root, manifest)


@torch.no_grad()
def encode_batch(vae, teacher: FlowTeacher, video: torch.Tensor, grid: tuple[int, int, int]) -> dict:
    """``video: B×3×F×H×W`` -> ``{"latent_mean", "latent_std": B×C×T×h×w, "flow": B×T×h'×w'×D}``."""
    posterior = vae.encode(video)
    mean, std = posterior.mean, posterior.std
    if mean.shape[2] != grid[0]:
        raise ValueError(f"the VAE made {mean.shape[2]} latent frames from {video.shape[2]} frames; the flow "
                         f"targets expect {grid[0]} (temporal stride {getattr(vae, 'temporal_stride', 4)}): check "
                         "vae.* and data.num_frames")
    return {"latent_mean": mean, "latent_std": std, "flow": teacher.targets(video, grid)}


def encode_captions(text_encoder, cond_cfg, captions: Sequence[str], modalities: Sequence[str],
                    device: torch.device | str, dtype: torch.dtype) -> list[torch.Tensor]:
    """T5 features (real tokens only, ``L_i×D`` on the CPU) of a batch's captions, as training would make them.

    Captions follow the training policy (:func:`medsora.cond.captions.prepare_captions`
    without ``use_template``): an empty caption becomes ``cond.template``; over-long ones are
    truncated to ``cond.max_tokens`` with a warning.
    """
    from medsora.cond.captions import prepare_captions

    texts = prepare_captions(list(captions), list(modalities), len(captions), str(cond_cfg.template))
    return text_encoder.encode(texts, device=device).unpack(dtype)


def encode_cache(cfg, vae, scaling_factor: float, teacher: FlowTeacher, vae_sha256: str, *,
                 splits: Sequence[str] = ("train", "val"), shard_size: int = 64, batch_size: Optional[int] = None,
                 device: torch.device | str = "cpu", rank: int = 0, world_size: int = 1,
                 dtype: str = "float32", progress: bool = True, datasets: Optional[dict] = None,
                 text_encoder=None, text_dtype: str = "bfloat16") -> dict:
    """Write this rank's shards of the cache at ``cfg.data.cache``.

    Args:
        cfg: composed run config (``data.cache`` is the output folder).
        vae: frozen VAE with ``encode(video) -> posterior (.mean, .std)``.
        scaling_factor: the VAE's latent scaling factor (recorded in the manifest).
        teacher: the flow teacher matching ``cfg.align``.
        vae_sha256: hash of the VAE checkpoint (recorded and checked on reuse).
        splits, shard_size, batch_size: what to encode and how it is cut (batch default ``data.batch_size``).
        device, rank, world_size: where this process runs and which shards it owns (``i % world_size``).
        dtype: storage dtype of the tensors.
        text_encoder: a :class:`medsora.cond.T5TextEncoder` to precompute caption features
            with (``None``: no features; training then encodes captions online).
        text_dtype: storage dtype of the caption features (bfloat16: T5's range, half the bytes).
        datasets: ``{split: dataset}`` to encode (default :func:`clip_datasets`).
    Returns:
        ``{"written": shards, "skipped": shards, "clips": encoded clips, "seconds": wall time}``.
    """
    if not cfg.data.cache:
        raise ConfigError("data.cache is not set: give the output folder, e.g. data.cache=/data/cache/demo64")
    for flag, value in (("--dtype", dtype), ("--text-dtype", text_dtype)):
        if value not in DTYPES:
            raise ConfigError(f"{flag} {value!r} is not one of {sorted(DTYPES)}")
    root = Path(str(cfg.data.cache)).expanduser()
    datasets = datasets if datasets is not None else clip_datasets(cfg.data, splits)
    rates = [ds.clip_fps() for ds in datasets.values() if hasattr(ds, "clip_fps")]
    grid = token_grid(int(cfg.data.num_frames), int(cfg.data.size), int(cfg.data.size), int(cfg.model.patch),
                      temporal_stride=getattr(vae, "temporal_stride", 4))
    manifest = {
        "fingerprint": run_fingerprint(cfg, vae_sha256=vae_sha256, teacher_identity=teacher.identity()),
        "scaling_factor": float(scaling_factor),
        "splits": {s: {"num_items": len(ds), "shard_size": int(shard_size)} for s, ds in datasets.items()},
        "token_grid": list(grid),
        "flow_dim": teacher.dim,
        "dtype": dtype,
        "text": None,
        "fps": next((r for r in rates if r), None),  # clip frame rate, for the samples of models trained on it
    }
    if text_encoder is not None:
        from medsora.cond.text_encoder import text_encoder_identity
        from medsora.data.cache import text_settings

        identity = text_encoder_identity(str(text_encoder.folder))
        manifest["text"] = {**text_settings(cfg.cond, identity), "dim": text_encoder.dim, "dtype": text_dtype}
    plan_manifest(root, manifest, rank)
    vae.eval().requires_grad_(False)
    vae.to(device)
    teacher.to(device)
    batch = int(batch_size or cfg.data.batch_size)
    workers = default_workers() if cfg.data.num_workers is None else int(cfg.data.num_workers)
    jobs = [(s, i, rng) for s, ds in datasets.items() for i, rng in enumerate(shard_plan(len(ds), shard_size))
            if i % world_size == rank]
    todo = [job for job in jobs if shard_items(shard_path(root, job[0], job[1])) != job[2][1] - job[2][0]]
    stats = {"written": 0, "skipped": len(jobs) - len(todo), "clips": 0, "seconds": 0.0}
    bar = tqdm(total=sum(stop - start for _, _, (start, stop) in todo), unit="clip", disable=not progress,
               desc=f"encode rank {rank}/{world_size}", position=rank if world_size > 1 else None)
    began = time.perf_counter()
    for split, index, (start, stop) in todo:
        loader = DataLoader(Subset(datasets[split], range(start, stop)), batch_size=batch, shuffle=False,
                            num_workers=workers)
        parts, records, text = [], [], []
        for item in loader:
            out = encode_batch(vae, teacher, item["video"].to(device), grid)
            parts.append({k: v.to("cpu", DTYPES[dtype]) for k, v in out.items()})
            clips = item["clip"].tolist() if "clip" in item else [0] * len(item["path"])
            attrs = item["attributes"] if "attributes" in item else ["{}"] * len(item["path"])
            records += [{"caption": c, "modality": m, "path": p, "clip": k, "attributes": a}
                        for c, m, p, k, a in zip(item["caption"], item["modality"], item["path"], clips, attrs)]
            if text_encoder is not None:
                text += encode_captions(text_encoder, cfg.cond, item["caption"], item["modality"], device,
                                        DTYPES[text_dtype])
            bar.update(len(item["path"]))
        write_shard(shard_path(root, split, index), {k: torch.cat([p[k] for p in parts]) for k in parts[0]}, records,
                    text=text if text_encoder is not None else None)
        stats["written"] += 1
        stats["clips"] += stop - start
    bar.close()
    stats["seconds"] = time.perf_counter() - began
    return stats


def _distributed(args) -> tuple[int, int, int]:
    rank = args.rank if args.rank is not None else int(os.environ.get("RANK", 0))
    world = args.world_size if args.world_size is not None else int(os.environ.get("WORLD_SIZE", 1))
    local = int(os.environ.get("LOCAL_RANK", rank))
    if not 0 <= rank < world:
        raise ConfigError(f"--rank {rank} must be in 0..{world - 1} (--world-size {world})")
    return rank, world, local


def _device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA device is visible; use --device cpu")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device(name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m medsora.encode",
        description="Precompute VAE latents (posterior mean/std) and OFRA flow targets into data.cache.",
        epilog="Example: python -m medsora.encode experiment=diffusion_demo vae.ckpt=vae.ckpt data.cache=~/cache/demo",
    )
    parser.add_argument("overrides", nargs="*", help="experiment=NAME and key=value config overrides")
    parser.add_argument("--splits", default="train,val", help="comma-separated splits (default train,val)")
    parser.add_argument("--shard-size", type=int, default=64, help="clips per shard file (default 64)")
    parser.add_argument("--batch-size", type=int, default=None, help="clips per forward pass (default data.batch_size)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES), help="storage dtype (default float32)")
    parser.add_argument("--text-dtype", default="bfloat16", choices=sorted(DTYPES),
                        help="storage dtype of T5 caption features (default bfloat16)")
    parser.add_argument("--no-text", action="store_true",
                        help="with cond.text, do not precompute caption features (training then runs T5)")
    parser.add_argument("--rank", type=int, default=None, help="this process's rank (default $RANK or 0)")
    parser.add_argument("--world-size", type=int, default=None, help="number of processes (default $WORLD_SIZE or 1)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_config_dir_argument(parser)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Command-line entry point; returns the encode statistics."""
    args = build_parser().parse_intermixed_args(argv)
    use_config_dirs(args.config_dir)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    cfg = compose(overrides=args.overrides)
    from medsora.vae.select import load_frozen_vae, vae_identity

    if cfg.vae.kind == "sd":
        if not cfg.vae.pretrained:
            raise ConfigError("vae=sd: vae.pretrained is not set: give the local AutoencoderKL folder (vae.pretrained=DIR)")
    else:
        if not cfg.vae.ckpt:
            raise ConfigError("vae.ckpt is not set: give the trained VAE checkpoint to encode with (vae.ckpt=PATH)")
        ckpt = Path(str(cfg.vae.ckpt)).expanduser()
        if not ckpt.is_file():
            raise ConfigError(f"vae.ckpt={ckpt}: no such file (train one with python -m medsora.fit experiment=... "
                              "stage=vae, or point vae.ckpt at an existing checkpoint)")
    rank, world, local = _distributed(args)
    device = _device(args.device, local)
    vae, scaling_factor = load_frozen_vae(cfg.vae)
    teacher = FlowTeacher.from_config(cfg.align)
    text_encoder = None
    if cfg.cond.text and not args.no_text:
        from medsora.cond.text_encoder import T5TextEncoder

        if not cfg.cond.text_encoder:
            raise ConfigError("cond.text is true but cond.text_encoder is not set: give the local T5 folder "
                              "(cond.text_encoder=PATH), or pass --no-text to leave caption features out")

        text_encoder = T5TextEncoder.from_config(cfg.cond)
    stats = encode_cache(
        cfg, vae, scaling_factor, teacher, vae_identity(cfg.vae),
        splits=[s for s in args.splits.split(",") if s], shard_size=args.shard_size, batch_size=args.batch_size,
        device=device, rank=rank, world_size=world, dtype=args.dtype, progress=not args.no_progress,
        text_encoder=text_encoder, text_dtype=args.text_dtype,
    )
    rate = stats["clips"] / stats["seconds"] if stats["seconds"] > 0 else float("nan")
    log.info("rank %d/%d: %d shards written, %d already done, %d clips in %.1f s (%.2f clips/s) -> %s",
             rank, world, stats["written"], stats["skipped"], stats["clips"], stats["seconds"], rate, cfg.data.cache)
    return stats


if __name__ == "__main__":
    from medsora.cli import run_cli

    raise SystemExit(run_cli(main, "medsora.encode"))
