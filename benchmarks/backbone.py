"""Scaling of the MedSora block pattern against joint space-time attention.

Forward+backward time and memory against the number of tokens, for

* ``medsora``: ``[local_attn, spatial_mamba, temporal_mamba]`` per layer, no MLP (the presets'
  pattern and settings: Mamba-2, d_state 128, headdim 64, expand 2, 8×8 windows; with
  ``--local-attn raster1d`` the reference's 1-D raster windows of ``--window`` tokens reaching
  ``--window-reach`` windows each way, as ``experiment=medsora_reference``);
* ``full_attn``: a DiT block per layer (joint attention over all T·h·w tokens + MLP ×4),

at the same width and depth. Each (pattern, grid) runs in a fresh subprocess so that its
peak resident memory can be read; activation memory is the bytes of the tensors autograd
saves for backward (parameters excluded), which does not depend on the allocator or on
other processes. Log-log slopes are fitted on the upper sizes (``--fit-from`` tokens and
up): at small token counts fixed per-call costs make every curve look flatter.

    python benchmarks/backbone.py            # full run, appends to benchmarks/RESULTS.md
    python benchmarks/backbone.py --quick    # smoke run, nothing written
    python benchmarks/backbone.py --local-attn raster1d   # the reference's local attention
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from machine_info import append_results, describe_machine

PATTERNS = {
    "medsora": dict(blocks=["local_attn", "spatial_mamba", "temporal_mamba"], mlp_ratio=0.0),
    "full_attn": dict(blocks=["full_attn"], mlp_ratio=4.0),
    # the MedSora pattern with its spatial sub-block recomputed in backward (model.checkpoint_blocks)
    "medsora_ckpt": dict(blocks=["local_attn", "spatial_mamba", "temporal_mamba"], mlp_ratio=0.0,
                         checkpoint_blocks=["spatial_mamba"]),
}
GRIDS = "5x8x8,5x16x16,9x16x16,9x20x20,9x24x24,13x24x24,17x24x24,17x32x32"
QUICK_GRIDS = "3x4x4,3x8x8,5x8x8"
LATENT_CHANNELS = 16


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def worker(args) -> dict:
    """One (pattern, grid) measurement in this process; returns a JSON-able dict."""
    import torch

    from medsora.backbone import MedSoraDiT
    from medsora.backbone.cost import saved_activation_bytes

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    t_len, h, w = (int(v) for v in args.grid.split("x"))
    model = MedSoraDiT(
        in_channels=LATENT_CHANNELS, depth=args.depth, hidden=args.hidden, heads=args.heads, patch=2,
        d_state=args.d_state, headdim=64, expand=2, window=args.window, learn_sigma=True,
        local_attn=args.local_attn, window_reach=args.window_reach, **PATTERNS[args.pattern],
    ).to(device)
    x = torch.randn(1, LATENT_CHANNELS, t_len, 2 * h, 2 * w, device=device)
    t = torch.tensor([500], device=device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    clock = time.process_time if args.clock == "cpu" else time.perf_counter

    def step():
        sync()
        start = clock()
        model(x, t).square().mean().backward()
        sync()
        model.zero_grad(set_to_none=True)
        return clock() - start

    # Peak first, while nothing has run yet: ru_maxrss is a lifetime maximum.
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    base_rss = _rss_kib()
    first = step()
    if device.type == "cuda":
        peak_mib = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024

    activation_bytes = saved_activation_bytes(model, x, t)
    # The first pass is a warm-up; so are ``--warmup - 1`` more (the CPU allocator's reuse of freed
    # blocks settles over a few passes at multi-GiB activation sizes). Where the warm-ups and repeats
    # would exceed the time budget the first pass is the measurement.
    if first * (args.repeats + args.warmup - 1) < args.time_limit:
        for _ in range(args.warmup - 1):
            step()
        times = [step() for _ in range(args.repeats)]
    else:
        times = [first]
    return dict(
        pattern=args.pattern, grid=args.grid, tokens=t_len * h * w, times=times, median=statistics.median(times),
        activation_mib=activation_bytes / 2**20, peak_mib=peak_mib,
        params=sum(p.numel() for p in model.parameters()),
    )


def run_worker(args, pattern: str, grid: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--pattern", pattern, "--grid", grid]
    for key in ("device", "hidden", "depth", "heads", "d_state", "repeats", "warmup", "threads", "time_limit",
                "local_attn", "window", "window_reach", "clock"):
        cmd += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.time_limit * 10)
    except subprocess.TimeoutExpired:
        return dict(pattern=pattern, grid=grid, error=f"timed out after {args.time_limit * 10:.0f} s")
    if proc.returncode != 0:
        reason = "killed (out of memory?)" if proc.returncode < 0 else proc.stderr.strip().splitlines()[-1]
        return dict(pattern=pattern, grid=grid, error=reason)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _available_mib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo: pass --max-mem-gib")


def extrapolate(done: list, key: str, tokens: int) -> float:
    """Predict ``key`` at ``tokens`` from the last two measured sizes.

    The log-log slope is clamped to [1, 2]: no block here costs less than linear or
    more than quadratic in tokens, and two noisy points can suggest either.
    """
    points = [(r["tokens"], r[key]) for r in done if r[key] > 0]
    if not points:
        return 0.0
    slope = min(2.0, max(1.0, loglog_slope(points[-2:]))) if len(points) >= 2 else 1.0
    n0, v0 = points[-1]
    return v0 * (tokens / n0) ** slope


def loglog_slope(points) -> float:
    """Least-squares slope of log(y) against log(x)."""
    xs = [math.log(x) for x, _ in points]
    ys = [math.log(y) for _, y in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((a - mx) * (b - my) for a, b in zip(xs, ys)) / sum((a - mx) ** 2 for a in xs)


def power_fit(points):
    """(log a, s) of the least-squares fit y = a·x^s in log-log, or None with fewer than two points."""
    if len(points) < 2:
        return None
    slope = loglog_slope(points)
    return statistics.fmean(math.log(y) - slope * math.log(x) for x, y in points), slope


def crossover(med: dict, full: dict) -> str:
    """Token count where full attention becomes slower than MedSora (log-log interpolation)."""
    common = sorted(set(med) & set(full))
    if not common:
        return "n/a"
    gap = [(n, math.log(full[n]) - math.log(med[n])) for n in common]
    if gap[0][1] > 0:
        return f"< {common[0]} (full attention is already slower at the smallest size)"
    for (n0, g0), (n1, g1) in zip(gap, gap[1:]):
        if g0 <= 0 < g1:
            frac = -g0 / (g1 - g0)
            return f"≈ {math.exp(math.log(n0) + frac * (math.log(n1) - math.log(n0))):.0f}"
    return f"> {common[-1]} (no crossover in the measured range)"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny grids, depth 2, one repeat, nothing written")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--grids", default=None, help=f"TxHxW token grids, comma separated (default {GRIDS})")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--d-state", type=int, default=128)
    parser.add_argument("--local-attn", default="tile", choices=["tile", "raster1d"],
                        help="model.local_attn of the MedSora patterns: tile (window×window tiles) or raster1d "
                             "(the reference's 1-D windows)")
    parser.add_argument("--window", type=int, default=8, help="model.window: tile side, or raster1d window length")
    parser.add_argument("--window-reach", type=int, default=1, help="model.window_reach (raster1d only)")
    parser.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                        help="time passes by wall clock, or by the process's CPU time (with --threads 1 on a "
                             "loaded shared CPU: what other processes' load does not inflate)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3,
                        help="untimed passes before the timed ones (>= 1; the CPU allocator settles over a few)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--time-limit", type=float, default=400.0,
                        help="a size whose fwd+bwd extrapolates beyond twice this is skipped; passes longer than "
                             "this are not repeated")
    parser.add_argument("--max-mem-gib", type=float, default=0.0,
                        help="skip sizes whose peak memory extrapolates beyond this (default: half of MemAvailable)")
    parser.add_argument("--fit-from", type=int, default=2000, help="fit slopes on token counts >= this")
    parser.add_argument("--results", default=str(Path(__file__).with_name("RESULTS.md")))
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--pattern", choices=list(PATTERNS), help=argparse.SUPPRESS)
    parser.add_argument("--grid", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return
    if args.quick:
        args.depth, args.repeats, args.no_write = 2, 1, True
        args.fit_from = min(args.fit_from, 100)
    grids = (args.grids or (QUICK_GRIDS if args.quick else GRIDS)).split(",")
    host = describe_machine(args.threads, args.device)

    max_mib = args.max_mem_gib * 1024 if args.max_mem_gib else 0.5 * _available_mib()
    results, stopped = {p: {} for p in PATTERNS}, {}
    for grid in grids:  # patterns side by side at every size, so both see the same machine state
        tokens = math.prod(int(v) for v in grid.split("x"))
        for pattern in PATTERNS:
            done = [r for r in results[pattern].values() if "median" in r]
            reason = stopped.get(pattern)
            if reason is None and extrapolate(done, "median", tokens) > 2 * args.time_limit:
                reason = f"skipped: one fwd+bwd extrapolates to > {2 * args.time_limit:.0f} s (--time-limit)"
            if reason is None and extrapolate(done, "peak_mib", tokens) > max_mib:
                reason = f"skipped: peak memory extrapolates to > {max_mib / 1024:.1f} GiB (--max-mem-gib)"
            if reason:
                results[pattern][grid] = dict(error=reason)
                stopped[pattern] = reason
                continue
            res = run_worker(args, pattern, grid)
            results[pattern][grid] = res
            print(f"{pattern:9s} {grid:9s} " + (f"{res['median']:.3f} s" if "median" in res else res["error"]),
                  file=sys.stderr, flush=True)
            if "error" in res:
                stopped[pattern] = "skipped: a smaller size failed"

    def cell(res, key, fmt):
        return fmt.format(res[key]) if key in res else "—"

    med_p = next((r["params"] for r in results["medsora"].values() if "params" in r), 0)
    full_p = next((r["params"] for r in results["full_attn"].values() if "params" in r), 0)
    lines = [
        f"| grid T×h×w | tokens | MedSora s | full_attn s | time ratio full/MedSora | MedSora act. MiB | "
        f"full_attn act. MiB | MedSora peak MiB | full_attn peak MiB | MedSora+ckpt s | MedSora+ckpt act. MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for grid in grids:
        med, full = results["medsora"][grid], results["full_attn"][grid]
        tokens = math.prod(int(v) for v in grid.split("x"))
        ratio = f"{full['median'] / med['median']:.2f}" if "median" in med and "median" in full else "—"
        lines.append(
            f"| {grid} | {tokens} | {cell(med, 'median', '{:.3f}')} | {cell(full, 'median', '{:.3f}')} | {ratio} | "
            f"{cell(med, 'activation_mib', '{:.0f}')} | {cell(full, 'activation_mib', '{:.0f}')} | "
            f"{cell(med, 'peak_mib', '{:.0f}')} | {cell(full, 'peak_mib', '{:.0f}')} | "
            f"{cell(results['medsora_ckpt'][grid], 'median', '{:.3f}')} | "
            f"{cell(results['medsora_ckpt'][grid], 'activation_mib', '{:.0f}')} |"
        )
    notes = sorted({f"{p} {g}: {r['error']}" for p in PATTERNS for g, r in results[p].items() if "error" in r})

    summary = []
    times = {p: {r["tokens"]: r["median"] for r in results[p].values() if "median" in r} for p in PATTERNS}
    acts = {p: {r["tokens"]: r["activation_mib"] for r in results[p].values() if "median" in r} for p in PATTERNS}
    slopes = {}
    for p in PATTERNS:
        upper = [(n, s) for n, s in times[p].items() if n >= args.fit_from]
        all_pts = sorted(times[p].items())
        slope_all = loglog_slope(all_pts) if len(all_pts) >= 2 else float("nan")
        slope_up = loglog_slope(upper) if len(upper) >= 2 else float("nan")
        slope_mem = loglog_slope([(n, a) for n, a in acts[p].items() if n >= args.fit_from]) if len(upper) >= 2 else float("nan")
        slopes[p] = slope_up
        summary.append(f"- {p}: time slope {slope_up:.2f} on tokens ≥ {args.fit_from} ({len(upper)} sizes; "
                       f"{slope_all:.2f} over all {len(all_pts)} sizes), activation-memory slope {slope_mem:.2f}")
    summary.append(f"- crossover (full attention slower than MedSora): {crossover(times['medsora'], times['full_attn'])} tokens")
    fits = {p: power_fit([(n, s) for n, s in times[p].items() if n >= args.fit_from]) for p in PATTERNS}
    if all(fits.values()) and fits["full_attn"][1] > fits["medsora"][1]:
        (a_m, s_m), (a_f, s_f) = fits["medsora"], fits["full_attn"]
        summary.append(f"- crossover extrapolated from the two fitted power laws: ≈ {math.exp((a_m - a_f) / (s_f - s_m)):.0f} "
                       "tokens (an extrapolation, not a measurement)")
    common = sorted(set(times["medsora"]) & set(times["full_attn"]))
    if common:
        n = common[-1]
        summary.append(f"- at the largest size measured for both ({n} tokens): full_attn/MedSora time "
                       f"{times['full_attn'][n] / times['medsora'][n]:.2f}×, activation memory "
                       f"{acts['full_attn'][n] / acts['medsora'][n]:.2f}×")
    for n in common:
        if n in times["medsora_ckpt"]:
            summary.append(f"- {n} tokens: activation memory ÷ full attention's: MedSora {acts['medsora'][n] / acts['full_attn'][n]:.2f}×, "
                           f"MedSora+ckpt {acts['medsora_ckpt'][n] / acts['full_attn'][n]:.2f}×; MedSora+ckpt time ÷ MedSora's "
                           f"{times['medsora_ckpt'][n] / times['medsora'][n]:.2f}×")
    goal_med = slopes["medsora"] <= 1.2
    goal_full = slopes["full_attn"] >= 1.7
    summary.append(f"- goals: MedSora slope ≤ 1.2: {'met' if goal_med else 'NOT met'} ({slopes['medsora']:.2f}); "
                   f"full attention slope ≥ 1.7: {'met' if goal_full else 'NOT met'} ({slopes['full_attn']:.2f})")

    command = "python benchmarks/backbone.py " + " ".join(argv if argv is not None else sys.argv[1:])
    local = (f"{args.window}×{args.window} tiles" if args.local_attn == "tile" else
             f"raster1d: 1-D windows of {args.window} tokens, reach {args.window_reach}, "
             f"{(2 * args.window_reach + 1) * args.window} keys")
    report = "\n".join([
        f"## Backbone scaling: MedSora pattern vs full attention ({args.device}, local_attn {args.local_attn}, "
        f"{time.strftime('%Y-%m-%d')})",
        "",
        f"Command: `{command.strip()}`  ",
        f"Machine: {host}  ",
        f"Setup: hidden {args.hidden}, depth {args.depth}, heads {args.heads}, batch 1, {LATENT_CHANNELS} latent "
        f"channels, patch 2, learned sigma; MedSora = local_attn ({local}) → bidirectional spiral spatial Mamba-2 → "
        f"causal temporal Mamba-2 (d_state {args.d_state}, headdim 64, expand 2), no MLP, "
        f"{med_p / 1e6:.2f} M params; full_attn = DiT block (joint attention + MLP×4), {full_p / 1e6:.2f} M params; "
        f"MedSora+ckpt = MedSora with model.checkpoint_blocks=[spatial_mamba]. "
        f"Time: {'wall-clock' if args.clock == 'wall' else 'process CPU-time'} median of {args.repeats} fwd+bwd passes after {args.warmup} untimed warm-up pass(es) "
        f"(the first pass alone where that would exceed --time-limit {args.time_limit:g} s). Activation: bytes autograd saves for backward. Peak: resident-memory growth of the "
        f"process over one fwd+bwd ({'CUDA max_memory_allocated' if args.device == 'cuda' else 'ru_maxrss'}).",
        "",
        *lines,
        "",
        *summary,
        *(["", "Not measured: " + "; ".join(notes)] if notes else []),
        "",
    ])
    print(report)
    if not args.no_write:
        append_results(report, args.results)


if __name__ == "__main__":
    main()
