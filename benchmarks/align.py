"""Cost of optical-flow representation alignment (OFRA): online teacher vs cached targets, and encode speed.

    python benchmarks/align.py           # demo size (17 frames, 32 px, batch 8), 16 clips encoded
    python benchmarks/align.py --quick   # batch 2, fewer repeats, 4 clips encoded

Training steps are real ``DiffusionModule`` steps of the ``diffusion_demo`` experiment
(``loss_terms`` -> backward -> gradient clipping -> AdamW), on a batch held in memory, for
four variants side by side (interleaved, same process, same backbone initialisation):

* alignment off / on with the VAE (and, when on, the RAFT teacher) run inside the step
  (``data.cache`` unset: what training from videos costs);
* alignment off / on with latents and flow targets read from an encode cache.

The VAE is the demo's (``vae_demo`` architecture, untrained: the cost is the same); RAFT is
raft_small with seeded random weights (``weights: random``; the cost is the same as trained).
Encode throughput is ``medsora.encode.encode_cache`` over demo clips, decoding included.
Appends a section to benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

from machine_info import append_results, describe_machine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ONLINE = "online teacher (VAE + RAFT in the step)"
VARIANTS = (  # (label, alignment on, from cache)
    ("off, VAE online", False, False),
    (ONLINE, True, False),
    ("off, cached latents", False, True),
    ("cached targets", True, True),
)


def vae_checkpoint(work: Path, overrides: list[str]) -> Path:
    """An untrained checkpoint of the demo VAE in the VAEModule format (what load_vae reads)."""
    import torch

    from medsora.config import compose
    from medsora.training.vae_module import VAEModule

    module = VAEModule(compose("vae_demo", [*overrides, "vae.scaling_factor=1.0", "vae.lpips='off'"]))
    ckpt = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(ckpt)
    path = work / "vae.ckpt"
    torch.save(ckpt, path)
    return path


def build_cache(cfg, ckpt: Path, clips: int) -> tuple[object, float]:
    """Encode ``clips`` demo clips (train) plus one (val) into ``cfg.data.cache``; returns (train clips, clips/s)."""
    from torch.utils.data import Subset

    from medsora.encode import clip_datasets, encode_cache
    from medsora.flow import FlowTeacher
    from medsora.flow.raft_weights import file_sha256
    from medsora.vae import load_vae

    vae, factor = load_vae(str(ckpt))
    teacher = FlowTeacher.from_config(cfg.align)
    train = clip_datasets(cfg.data, ["train"])["train"]
    datasets = {"train": Subset(train, range(clips)), "val": Subset(train, [clips])}
    stats = encode_cache(cfg, vae, factor, teacher, file_sha256(ckpt), shard_size=64, progress=False,
                         datasets=datasets)
    return datasets["train"], stats["clips"] / stats["seconds"]


def time_steps(cfg_of, batches: dict, repeats: int, steps: int) -> dict:
    """Median seconds per training step of each variant, measured interleaved."""
    import torch
    from torch.nn.utils import clip_grad_norm_

    from medsora.training.batch_random import BatchRandom
    from medsora.training.diffusion_module import DiffusionModule

    runs = {}
    for label, align, cached in VARIANTS:
        torch.manual_seed(0)
        module = DiffusionModule(cfg_of(align, cached), modalities=["endoscopy", "microscopy", "mri", "ultrasound"])
        runs[label] = (module, module.configure_optimizers()["optimizer"], batches["cache" if cached else "video"])

    def step(module, opt, batch, i):
        loss = module.loss_terms(batch, BatchRandom(i))["loss"]
        loss.backward()
        clip_grad_norm_(module.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for module, opt, batch in runs.values():
        step(module, opt, batch, 0)  # warm-up: allocator, scan orders, lazily built parts
    times = {label: [] for label in runs}
    for r in range(repeats):
        for label, (module, opt, batch) in runs.items():
            # an online-teacher step takes seconds: one per block is enough against timer noise
            n = 1 if label == ONLINE else steps
            began = time.perf_counter()
            for i in range(n):
                step(module, opt, batch, 1 + r * n + i)
            times[label].append((time.perf_counter() - began) / n)
    return {label: statistics.median(t) for label, t in times.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 2, 2 repeats, 4 clips encoded")
    parser.add_argument("--repeats", type=int, default=None, help="timed blocks per variant (default 5, quick 2)")
    parser.add_argument("--steps", type=int, default=4,
                        help="steps per timed block (default 4; the online-teacher variant always 1)")
    parser.add_argument("--clips", type=int, default=None, help="clips to encode (default 16, quick 4)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: on a shared, oversubscribed CPU more threads "
                             "spin against other processes and steps get 10-100x slower)")
    parser.add_argument("--no-write", action="store_true", help="do not append to benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 5)
    steps = args.steps
    clips = args.clips or (4 if args.quick else 16)

    import torch
    from torch.utils.data import default_collate

    from medsora.config import compose
    from medsora.data.cache import CacheDataset

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=".*RANDOMLY INITIALISED.*")
    os.environ.setdefault("MEDSORA_CACHE", str(Path("~/.cache/medsora").expanduser()))
    work = Path(tempfile.mkdtemp(prefix="medsora-align-bench-"))
    common = ["train.ema=false"] + (["data.batch_size=2"] if args.quick else [])
    ckpt = vae_checkpoint(work, common)
    cfg = compose("diffusion_demo", [*common, f"vae.ckpt={ckpt}", f"data.cache={work / 'cache'}"])
    batch_size = int(cfg.data.batch_size)
    clips = max(clips, batch_size)
    train, clips_per_s = build_cache(cfg, ckpt, clips)

    def cfg_of(align: bool, cached: bool):
        extra = [] if align else ["align=off"]
        return compose("diffusion_demo", [*common, f"vae.ckpt={ckpt}", *extra]
                       + ([f"data.cache={work / 'cache'}"] if cached else []))

    began = time.perf_counter()
    video = default_collate([train[i] for i in range(batch_size)])
    video_load = time.perf_counter() - began
    cache = CacheDataset(work / "cache", "train")
    began = time.perf_counter()
    cached = default_collate([cache[i] for i in range(batch_size)])
    cache_load = time.perf_counter() - began
    step_s = time_steps(cfg_of, {"video": video, "cache": cached}, repeats, steps)

    base = {True: step_s["off, cached latents"], False: step_s["off, VAE online"]}
    rows = ["| variant | step (s) | vs alignment off, same input |", "|---|---:|---:|"]
    for label, align, from_cache in VARIANTS:
        rows.append(f"| {label} | {step_s[label]:.3f} | {step_s[label] / base[from_cache]:.2f}× |")
    overhead = step_s["cached targets"] / base[True] - 1
    speedup = step_s[ONLINE] / step_s["cached targets"]
    command = "python benchmarks/align.py" + (" --quick" if args.quick else "") + \
        (f" --threads {args.threads}" if args.threads != 1 else "")
    section = (
        f"\n## OFRA cost: online teacher vs cached targets (benchmarks/align.py)\n\n`{command}`\n\n"
        f"Machine: {describe_machine()}\n\n"
        f"Experiment diffusion_demo ({cfg.data.num_frames} frames, {cfg.data.size} px, batch {batch_size}, "
        f"model {cfg.model.preset}, target {cfg.align.target}, {cfg.align.teacher.arch} "
        f"{cfg.align.teacher.iters} iterations, random weights), {args.threads} torch thread(s); real "
        f"DiffusionModule steps (loss_terms, backward, clipping, AdamW) on a batch in memory; median over "
        f"{repeats} interleaved repeats of the mean of {steps} steps (1 for the online teacher).\n\n"
        + "\n".join(rows) + "\n\n"
        f"- cached alignment adds **{100 * overhead:+.1f} %** to the cached step (goal <= 10 %)\n"
        f"- a cached-target step is **{speedup:.1f}×** faster than an online-teacher step\n"
        f"- loading one batch: {video_load:.3f} s decoding videos vs {cache_load:.3f} s reading the cache\n"
        f"- encode throughput (python -m medsora.encode path, decode + VAE + RAFT, {clips + 1} clips, "
        f"batch {batch_size}): **{clips_per_s:.2f} clips/s**\n"
    )
    if not torch.cuda.is_available():
        section += "\nNo GPU on this machine: the GPU figures were not measured.\n"
    print(section)
    if not args.no_write:
        append_results(section)


if __name__ == "__main__":
    main()
