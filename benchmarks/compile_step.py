"""Training-step time with and without ``torch.compile`` (``train.compile``), for the tiny and medsora_s presets.

    python benchmarks/compile_step.py                     # CPU (or --device cuda), appends to RESULTS.md
    python benchmarks/compile_step.py --threads 1 --grid tiny:5x8x8,medsora_s:3x4x4
    python benchmarks/compile_step.py --presets tiny --grid 3x4x4 --no-write

Per preset: one training step (forward, backward, AdamW) on a latent clip of ``--grid`` tokens (T×h×w after
2×2 patches; one grid for all presets, or ``preset:grid`` pairs), batch 1. The compiled model is
``torch.compile(model)`` (Inductor, default mode, what ``train.compile=true`` does); its first step
includes compilation and is reported apart (wall and CPU seconds; Inductor compiles in this process
by default, ``--compile-threads 1``, so that its CPU seconds are all counted). Eager and compiled steps then alternate,
``--repeats`` each after ``--warmup`` of each; medians of wall and of process CPU time (with one
thread, CPU time is what a loaded shared machine does not inflate). Both in one process, side by side.
``--cold`` compiles with an empty Inductor cache (a fresh ``TORCHINDUCTOR_CACHE_DIR``): the cost of a
user's first run; without it a warm cache may hide most of the compilation.
"""
from __future__ import annotations

import argparse
import datetime
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _cpu() -> float:
    """CPU seconds of this process and its reaped children (Inductor's compile workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _grids(spec: str, presets: list[str]) -> dict[str, tuple[int, int, int]]:
    def parse(text: str) -> tuple[int, int, int]:
        t, h, w = (int(v) for v in text.split("x"))
        return t, h, w

    if ":" not in spec:
        return {p: parse(spec) for p in presets}
    pairs = dict(item.split(":", 1) for item in spec.split(","))
    missing = [p for p in presets if p not in pairs]
    if missing:
        raise SystemExit(f"compile_step.py: error: --grid gives no grid for {missing} (use PRESET:TxHxW pairs)")
    return {p: parse(pairs[p]) for p in presets}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", default="tiny,medsora_s")
    ap.add_argument("--grid", default="5x8x8",
                    help="latent token grid T×h×w for every preset (5x8x8: a 128²×17 clip), or PRESET:TxHxW pairs")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps of each kind after the compiling one")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--cold", action="store_true", help="compile with an empty Inductor cache")
    ap.add_argument("--compile-threads", type=int, default=1,
                    help="Inductor's compile workers (1: in this process, so the compilation CPU time is counted)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    if args.cold:  # before torch is imported: Inductor reads it once
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-cold-")
    os.environ["TORCHINDUCTOR_COMPILE_THREADS"] = str(args.compile_threads)
    import torch

    from machine_info import append_results, describe_machine
    from medsora.backbone import MedSoraDiT
    from medsora.backbone.presets import preset_config

    torch.set_num_threads(args.threads)
    presets = args.presets.split(",")
    grids = _grids(args.grid, presets)
    lines = ["| preset | grid T×h×w | params (M) | eager step s (wall) | compiled step s (wall) | eager step CPU s | "
             "compiled step CPU s | eager ÷ compiled (CPU) | compilation: first step wall s | compilation CPU s | "
             "load (1-min) |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name in presets:
        load_start = os.getloadavg()[0]
        torch.manual_seed(0)
        cfg = preset_config(name, ["scan_impl=torch"])
        with torch.device(args.device):
            model = MedSoraDiT(16, cfg)
        compiled = torch.compile(model)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        t_len, h, w = grids[name]
        x = torch.randn(1, 16, t_len, 2 * h, 2 * w, device=args.device)
        t = torch.tensor([500], device=args.device)

        def step(fn):
            if args.device == "cuda":
                torch.cuda.synchronize()
            start, cpu = time.perf_counter(), time.process_time()
            fn(x, t).square().mean().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if args.device == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter() - start, time.process_time() - cpu

        step(model)  # eager warm-up
        cpu0 = _cpu()
        first, _ = step(compiled)
        compile_cpu = _cpu() - cpu0
        for _ in range(args.warmup - 1):
            step(model), step(compiled)
        eager, comp = [], []
        for _ in range(args.repeats):
            eager.append(step(model))
            comp.append(step(compiled))
        ew, cw = (statistics.median(s[0] for s in runs) for runs in (eager, comp))
        ec, cc = (statistics.median(s[1] for s in runs) for runs in (eager, comp))
        row = (f"| {name} | {t_len}x{h}x{w} | {sum(p.numel() for p in model.parameters()) / 1e6:.2f} | {ew:.3f} | "
               f"{cw:.3f} | {ec:.3f} | {cc:.3f} | {ec / cc:.2f}× | {first:.0f} | {compile_cpu:.0f} | "
               f"{load_start:.1f} → {os.getloadavg()[0]:.1f} |")
        print(row, flush=True)
        lines.append(row)
    cmd = "python benchmarks/compile_step.py " + " ".join(argv if argv is not None else sys.argv[1:])
    section = "\n".join([
        f"## torch.compile on/off: training step ({args.device}, {datetime.date.today().isoformat()})", "",
        f"Command: `{cmd.strip()}`  ", f"Machine: {describe_machine(args.threads, args.device)}  ",
        f"Setup: batch 1, fp32, scan_impl=torch; one step = forward + backward + AdamW; medians of "
        f"{args.repeats} alternating eager/compiled steps after {args.warmup} of each; Inductor cache "
        f"{'empty at the start (--cold)' if args.cold else 'as found (may be warm)'}, {args.compile_threads} compile "
        "thread(s). Compilation CPU s = this process + its reaped compile workers over the first compiled step.", "", *lines, ""])
    print(section)
    if not args.no_write:
        append_results(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
