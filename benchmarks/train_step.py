"""Diffusion training-step speed and peak memory of the backbone presets.

    python benchmarks/train_step.py            # tiny and medsora_s on CPU (batch 1, demo size 32 px, 17 frames)
    python benchmarks/train_step.py --quick    # fewer repeats
    python benchmarks/train_step.py --gpu      # also bf16 at 128×128×17 on CUDA when a GPU is present

A step is what ``DiffusionModule.training_step`` runs on cached latents (noise, backbone
forward with the OFRA projector, denoising + alignment loss, backward) plus gradient clipping
and the AdamW update — everything but data loading and Lightning's loop. Each configuration
runs in its own subprocess so that its peak memory (peak RSS on CPU, peak CUDA allocation on
GPU) is its own; the figure beside it is the process's RSS before the first step (Python,
torch, the model). Times are medians over repeats of the mean step time of a timed block.
Appends a section to benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from machine_info import append_results, describe_machine

ROOT = Path(__file__).resolve().parent.parent


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(preset: str, device: str, size: int, frames: int, align: bool, repeats: int, steps: int) -> dict:
    """Time training steps of one configuration in this process."""
    import torch

    import tempfile

    from medsora.config import compose
    from medsora.data.cache import write_manifest
    from medsora.training.diffusion_module import DiffusionModule

    torch.manual_seed(0)
    # The module reads the latent scaling factor from the cache's manifest; the latents themselves
    # are synthetic here (the step does not depend on their values).
    cache = tempfile.mkdtemp(prefix="medsora-bench-")
    write_manifest(cache, {"splits": {}, "scaling_factor": 1.0, "fingerprint": {}})
    overrides = [
        "data.root=demo", f"data.cache={cache}", f"data.size={size}", f"data.num_frames={frames}",
        f"model={preset}", "vae.latent_channels=16" if preset != "tiny" else "vae.latent_channels=4",
        f"align.enabled={str(align).lower()}", "align.teacher.weights=random", "train.ema=false",
    ]
    cfg = compose(overrides=overrides)
    module = DiffusionModule(cfg).to(device)
    opt = module.configure_optimizers()["optimizer"]
    c = module.in_channels
    t, h, w = module.latent_grid()
    p = cfg.model.patch
    batch = {"latent_mean": torch.randn(1, c, t, h, w, device=device),
             "latent_std": torch.full((1, c, t, h, w), 0.05, device=device)}
    if align:
        from medsora.flow import target_dim

        batch["flow"] = torch.randn(1, t, h // p, w // p, target_dim(cfg.align), device=device)
    from medsora.training.batch_random import BatchRandom

    def step(i: int) -> None:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = module.loss_terms(batch, BatchRandom(i, device=device))["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    base_rss = _rss_mb()
    step(0)  # warm-up (allocator, lazily built scan orders)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for r in range(repeats):
        began = time.perf_counter()
        for i in range(steps):
            step(1 + r * steps + i)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - began) / steps)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else _rss_mb()
    params = sum(q.numel() for q in module.backbone.parameters())
    return {"preset": preset, "device": device, "size": size, "frames": frames, "align": align,
            "params_m": params / 1e6, "tokens": t * (h // p) * (w // p), "step_s": statistics.median(times),
            "step_s_all": times, "peak_mb": peak, "base_rss_mb": base_rss}


def run(config: dict, repeats: int, steps: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", json.dumps(config), "--repeats", str(repeats), "--steps", str(steps)]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"worker failed for {config}:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    lines = ["| preset | device | clip | OFRA | params (M) | tokens | step (s) | steps/s | peak memory (MB) | base RSS (MB) |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        memory = f"{r['peak_mb']:.0f}" + (" (CUDA alloc)" if r["device"] == "cuda" else " (RSS)")
        lines.append(f"| {r['preset']} | {r['device']} | {r['frames']}×{r['size']}² | {'on' if r['align'] else 'off'} "
                     f"| {r['params_m']:.2f} | {r['tokens']} | {r['step_s']:.3f} | {1 / r['step_s']:.2f} | {memory} "
                     f"| {r['base_rss_mb']:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 repeats of 3 steps")
    parser.add_argument("--gpu", action="store_true", help="also bf16 at 128×128×17 on CUDA, when available")
    parser.add_argument("--no-write", action="store_true", help="do not append to benchmarks/RESULTS.md")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 5)
    steps = args.steps or (3 if args.quick else 5)
    if args.worker:
        import torch

        torch.set_num_threads(min(os.cpu_count() or 1, 16))
        print(json.dumps(worker(**json.loads(args.worker), repeats=repeats, steps=steps)))
        return
    configs = [dict(preset=p, device="cpu", size=32, frames=17, align=a) for p in ("tiny", "medsora_s")
               for a in (True, False)]
    import torch

    if args.gpu and torch.cuda.is_available():
        configs += [dict(preset=p, device="cuda", size=128, frames=17, align=True) for p in ("tiny", "medsora_s",
                                                                                                 "medsora_b")]
    rows = [run(c, repeats, steps) for c in configs]
    command = "python benchmarks/train_step.py" + (" --quick" if args.quick else "") + (" --gpu" if args.gpu else "")
    note = "" if torch.cuda.is_available() else "\nNo GPU on this machine: the bf16 128×128×17 GPU rows were not measured.\n"
    section = (f"\n## Diffusion training step (benchmarks/train_step.py)\n\n`{command}`\n\nMachine: {describe_machine()}\n\n"
               f"Batch 1, cached latents (no VAE/RAFT in the step), AdamW + clipping; median of {repeats} "
               f"repeats × {steps} steps.\n\n{table(rows)}\n{note}")
    print(section)
    if not args.no_write:
        append_results(section)


if __name__ == "__main__":
    main()
