"""Few-step samplers against a 1000-step reference: PSNR of the decoded clips and time per clip.

    python benchmarks/samplers.py --ckpt RUN_A/checkpoints/last.ckpt --ckpt RUN_B/checkpoints/last.ckpt

For each diffusion checkpoint (one per objective, e.g. the demo's flow-matching model and the
same demo trained with ``diffusion=medsora``-style DDPM), each *deterministic* sampler that fits
its objective (``ddim``, ``dpmpp`` for Gaussian models; ``euler``, ``heun`` for flow matching)
and each step count, the clips are sampled from the same starting noise (seeds 0..num-1, the
model's guidance scale and conditions) and decoded; the reference is the same model's
1000-step first-order solve (``ddim`` resp. ``euler``) from that noise, i.e. the probability-flow
ODE solved finely. PSNR is over the decoded clips in [-1, 1] (data range 2), per clip, then the
mean (and the worst clip). Times are wall and process-CPU seconds per clip including decoding;
the machine is shared, so CPU seconds are the steadier figure. Appends to benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from machine_info import append_results, describe_machine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def psnr(ref, x) -> list[float]:
    """Per-clip PSNR (dB) of videos in [-1, 1]: B×3×F×H×W each."""
    import torch

    mse = (ref.float() - x.float()).pow(2).flatten(1).mean(dim=1)
    return (10 * torch.log10(4.0 / mse.clamp(min=1e-12))).tolist()


def run(ckpts: list[str], steps: list[int], num: int, reference_steps: int) -> list[dict]:
    import torch

    from medsora.diffusion import DETERMINISTIC, samplers_for
    from medsora.diffusion.samplers import evaluations
    from medsora.training.diffusion_module import DiffusionModule

    rows = []
    for path in ckpts:
        module = DiffusionModule.from_checkpoint(path)
        objective = module.cfg.diffusion.objective
        first_order = "ddim" if objective == "ddpm" else "euler"

        def clip(sampler: str, n: int):
            wall, cpu = time.perf_counter(), time.process_time()
            videos = module.generate(num, seed=0, sampler=sampler, steps=n, batch_size=num)
            return videos, (time.perf_counter() - wall) / num, (time.process_time() - cpu) / num

        ref, ref_wall, ref_cpu = clip(first_order, reference_steps)
        rows.append({"objective": objective, "sampler": first_order, "steps": reference_steps,
                     "nfe": reference_steps, "psnr": float("inf"), "psnr_min": float("inf"),
                     "wall": ref_wall, "cpu": ref_cpu, "reference": True})
        for sampler in (s for s in samplers_for(objective) if s in DETERMINISTIC):
            for n in steps:
                videos, wall, cpu = clip(sampler, n)
                scores = psnr(ref, videos)
                rows.append({"objective": objective, "sampler": sampler, "steps": n, "nfe": evaluations(sampler, n),
                             "psnr": sum(scores) / len(scores), "psnr_min": min(scores), "wall": wall, "cpu": cpu,
                             "reference": False})
                print(f"{objective:13s} {sampler:6s} {n:5d} steps  {rows[-1]['psnr']:6.2f} dB  "
                      f"{wall:6.2f} s/clip  {cpu:6.2f} cpu-s/clip", flush=True)
        rows.append({"objective": objective, "ckpt": path, "cfg_scale": module.cfg.diffusion.cfg_scale,
                     "grid": module.latent_grid(), "separator": True})
    return rows


def table(rows: list[dict], reference_steps: int) -> str:
    lines = [f"| objective | sampler | steps | NFE | PSNR vs {reference_steps}-step ref (dB), mean | worst clip | "
             "wall s/clip | CPU s/clip |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r.get("separator"):
            continue
        ref = " (reference)" if r["reference"] else ""
        score = "—" if r["reference"] else f"{r['psnr']:.1f}"
        worst = "—" if r["reference"] else f"{r['psnr_min']:.1f}"
        lines.append(f"| {r['objective']} | {r['sampler']}{ref} | {r['steps']} | {r['nfe']} | {score} | {worst} | "
                     f"{r['wall']:.2f} | {r['cpu']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", action="append", required=True, help="a diffusion checkpoint (repeat: one per objective)")
    parser.add_argument("--steps", default="10,25,50,100,250", help="step counts (comma-separated)")
    parser.add_argument("--num", type=int, default=4, help="clips per setting (seeds 0..num-1)")
    parser.add_argument("--reference-steps", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--no-append", action="store_true", help="print only, do not append to RESULTS.md")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    steps = [int(s) for s in args.steps.split(",")]
    rows = run(args.ckpt, steps, args.num, args.reference_steps)
    text = table(rows, args.reference_steps)
    print(text)
    models = [r for r in rows if r.get("separator")]
    desc = "; ".join(f"{m['objective']}: {m['ckpt']} (guidance {m['cfg_scale']}, latent grid {tuple(m['grid'])})"
                     for m in models)
    section = (f"## Samplers: few steps vs a 1000-step reference ({time.strftime('%Y-%m-%d')})\n\n"
               f"Command: `python benchmarks/samplers.py {' '.join(sys.argv[1:])}`\n\n"
               f"Machine: {describe_machine()} (load {load_before:.1f} at the start).\n\n"
               f"Models: {desc}. {args.num} clips per row, seeds 0..{args.num - 1}; PSNR of the decoded clips "
               f"([-1, 1], data range 2) against the same model's {args.reference_steps}-step first-order solve "
               "(ddim / euler) from the same noise; NFE = denoiser evaluations (each a guided pair when guidance ≠ 1).\n\n"
               f"{text}\n")
    if not args.no_append:
        append_results(section)


if __name__ == "__main__":
    main()
