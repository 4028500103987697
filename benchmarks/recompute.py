"""Activation memory of the MedSora pattern against full attention, and what its recomputation costs.

Side by side in one run, at one token grid (default 9×24×24, depth 4, width 256 as
``benchmarks/backbone.py``), each variant in its own subprocess, the variants interleaved round
by round so that all of them see the same machine load:

* ``full_attn``: a DiT block per layer (joint attention + MLP ×4), the reference for memory;
* ``medsora``: the MedSora pattern as configured by default (``model.mamba_recompute=full``: Mamba-2
  layers recompute everything between their two projections in backward);
* ``medsora_off``: the same with ``model.mamba_recompute=off`` (every intermediate saved), the
  reference for time;
* ``medsora_ckpt``: the default plus ``model.checkpoint_blocks=[spatial_mamba]``;
* ``baseline`` (with ``--baseline DIR``): the MedSora pattern's default in another checkout of
  this repository (e.g. ``git worktree add /tmp/base COMMIT``), for before/after timings;
  ``baseline_off`` (``--baseline-variants baseline,baseline_off``): the same checkout with
  ``model.mamba_recompute=off``, to compare this checkout's default with an older ``off``.

Saved bytes are counted with ``saved_tensors_hooks`` (:func:`medsora.backbone.cost.saved_activation_bytes`):
exact and independent of load. Times are wall-clock fwd+bwd passes and process CPU time beside them
(workers run with ``OMP_NUM_THREADS`` = ``--threads``, default 1); the table shows medians over all
timed passes of all rounds, and CPU time as ratios to each reference present (``medsora_off``,
``baseline_off``, ``baseline``; wall time to the first).

    python benchmarks/recompute.py --baseline /tmp/base          # appends to benchmarks/RESULTS.md
    python benchmarks/recompute.py --variants medsora,medsora_off --baseline /tmp/base \
        --baseline-variants baseline_off                         # this default against an older off
    python benchmarks/recompute.py --quick                       # smoke run, nothing written
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from machine_info import append_results, describe_machine

HERE = Path(__file__).resolve().parent.parent
MEDSORA = dict(blocks=["local_attn", "spatial_mamba", "temporal_mamba"], mlp_ratio=0.0)
VARIANTS = {
    "full_attn": dict(blocks=["full_attn"], mlp_ratio=4.0),
    "medsora": MEDSORA,
    "medsora_off": dict(MEDSORA, mamba_recompute="off"),
    "medsora_ckpt": dict(MEDSORA, checkpoint_blocks=["spatial_mamba"]),
    "baseline": MEDSORA,
    "baseline_off": dict(MEDSORA, mamba_recompute="off"),
}
BASELINES = ("baseline", "baseline_off")


def worker(args) -> dict:
    """One variant in this process: saved bytes of one forward, then ``--steps`` timed fwd+bwd passes."""
    import torch

    from medsora.backbone import MedSoraDiT
    from medsora.backbone.cost import saved_activation_bytes

    torch.set_num_threads(args.threads)
    kw = dict(VARIANTS[args.variant])
    t_len, h, w = (int(v) for v in args.grid.split("x"))
    torch.manual_seed(0)
    model = MedSoraDiT(in_channels=16, depth=args.depth, hidden=args.hidden, heads=4, patch=2, d_state=128,
                       headdim=64, expand=2, window=8, learn_sigma=True, scan_impl="torch", **kw)
    x, t = torch.randn(1, 16, t_len, 2 * h, 2 * w), torch.tensor([500])
    saved = saved_activation_bytes(model, x, t)

    def step():
        start, cpu = time.perf_counter(), time.process_time()
        model(x, t).square().mean().backward()
        model.zero_grad(set_to_none=True)
        return time.perf_counter() - start, time.process_time() - cpu

    step()  # warm-up
    passes = [step() for _ in range(args.steps)]
    return dict(variant=args.variant, saved_mib=saved / 2**20, wall=[p[0] for p in passes], cpu=[p[1] for p in passes])


def run_worker(args, variant: str) -> dict:
    tree = Path(args.baseline).resolve() if variant in BASELINES else HERE
    cmd = [sys.executable, __file__, "--worker", "--variant", variant, "--grid", args.grid, "--depth", str(args.depth),
           "--hidden", str(args.hidden), "--steps", str(args.steps), "--threads", str(args.threads)]
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS=str(args.threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{variant} failed: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", default="9x24x24", help="latent token grid T×h×w")
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (one process per variant each)")
    parser.add_argument("--steps", type=int, default=2, help="timed fwd+bwd passes per process, after one warm-up")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--variants", default="full_attn,medsora,medsora_off,medsora_ckpt",
                        help=f"comma separated, from {list(VARIANTS)} (baseline is added by --baseline)")
    parser.add_argument("--baseline", default=None, help="another checkout of this repository: its default MedSora")
    parser.add_argument("--baseline-variants", default="baseline",
                        help=f"comma separated, from {list(BASELINES)}: what runs from --baseline's checkout")
    parser.add_argument("--quick", action="store_true", help="tiny grid, depth 1, one round, nothing written")
    parser.add_argument("--results", default=str(Path(__file__).with_name("RESULTS.md")))
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", choices=list(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return
    if args.quick:
        args.grid, args.depth, args.rounds, args.steps, args.no_write = "3x8x8", 1, 1, 1, True
    baselines = args.baseline_variants.split(",") if args.baseline else []
    unknown = sorted(set(baselines) - set(BASELINES))
    if unknown:
        parser.error(f"--baseline-variants: unknown {unknown}; choose from {list(BASELINES)}")
    variants = args.variants.split(",") + baselines
    asked = set(args.variants.split(","))
    unknown = sorted((asked - set(VARIANTS)) | (asked & set(BASELINES)))
    if unknown:
        parser.error(f"--variants: unknown {unknown}; choose from {[v for v in VARIANTS if v not in BASELINES]} "
                     f"(the baselines come with --baseline)")
    loads = [os.getloadavg()[0]]
    runs = {v: [] for v in variants}
    for r in range(args.rounds):
        order = variants if r % 2 == 0 else variants[::-1]  # neither end of a round is always the same variant
        for v in order:
            runs[v].append(run_worker(args, v))
            print(f"round {r + 1} {v:14s} " + " ".join(f"{s:.2f}" for s in runs[v][-1]["wall"]) + " s",
                  file=sys.stderr, flush=True)
        loads.append(os.getloadavg()[0])

    full = runs["full_attn"][0]["saved_mib"] if "full_attn" in runs else None
    refs = [r for r in ("medsora_off", "baseline_off", "baseline") if r in runs]
    med = {v: statistics.median(w for run in runs[v] for w in run["wall"]) for v in variants}
    cpu = {v: statistics.median(c for run in runs[v] for c in run["cpu"]) for v in variants}
    first = refs[0] if refs else "—"
    lines = [f"| variant | saved MiB | ÷ full_attn | fwd+bwd s (median) | CPU s (median) | time ÷ {first} | "
             + " | ".join(f"CPU ÷ {r}" for r in refs or ["—"]) + " |",
             "|---|---:|---:|---:|---:|---:|" + "---:|" * max(1, len(refs))]
    for v in variants:
        saved = runs[v][0]["saved_mib"]
        ratio = f"{saved / full:.2f}" if full else "—"
        times = (f"{med[v] / med[first]:.3f} | " + " | ".join(f"{cpu[v] / cpu[r]:.3f}" for r in refs)) if refs \
            else "— | —"
        lines.append(f"| {v} | {saved:.0f} | {ratio} | {med[v]:.2f} | {cpu[v]:.2f} | {times} |")
    command = "python benchmarks/recompute.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = "\n".join([
        f"## Activation memory and recomputation ({time.strftime('%Y-%m-%d')})",
        "",
        f"Command: `{command.strip()}`  ",
        f"Machine: {describe_machine(args.threads)}; load average during the run "
        f"{min(loads):.1f}–{max(loads):.1f}  ",
        f"Setup: grid {args.grid}, hidden {args.hidden}, depth {args.depth}, batch 1, fp32, scan_impl=torch; "
        f"{args.rounds} interleaved rounds, each variant one process per round ({args.steps} timed fwd+bwd after "
        f"one warm-up); medians over all {args.rounds * args.steps} timed passes"
        + (f"; baseline = `{args.baseline}`" if args.baseline else ""),
        "",
        *lines,
        "",
    ])
    print(report)
    if not args.no_write:
        append_results(report, args.results)


if __name__ == "__main__":
    main()
