"""Training-step time with and without ``torch.compile`` (``train.compile``), for the tiny and medsora_s presets.

    python benchmarks/compile_step.py                     # CPU (or --device cuda), appends to RESULTS.md
    python benchmarks/compile_step.py --presets tiny --grid 3x4x4 --no-write

Per preset: one training step (forward, backward, AdamW) on a latent clip of ``--grid`` tokens (T×h×w after
2×2 patches), batch 1. The compiled model is ``torch.compile(model)`` (Inductor, default mode, what
``train.compile=true`` does); its first step includes compilation and is reported apart. Eager and
compiled steps then alternate, ``--repeats`` each; medians. Both in one process, side by side.
"""
from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from machine_info import append_results, describe_machine  # noqa: E402

from medsora.backbone import MedSoraDiT  # noqa: E402
from medsora.backbone.presets import preset_config  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", default="tiny,medsora_s")
    ap.add_argument("--grid", default="5x8x8", help="latent token grid T×h×w (5x8x8: a 128²×17 clip)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()[0]
    t_len, h, w = (int(v) for v in args.grid.split("x"))
    lines = ["| preset | params (M) | eager step s | compiled step s | eager ÷ compiled | first compiled step "
             "(compilation) s |", "|---|---:|---:|---:|---:|---:|"]
    for name in args.presets.split(","):
        torch.manual_seed(0)
        cfg = preset_config(name, ["scan_impl=torch"])
        with torch.device(args.device):
            model = MedSoraDiT(16, cfg)
        compiled = torch.compile(model)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        x = torch.randn(1, 16, t_len, 2 * h, 2 * w, device=args.device)
        t = torch.tensor([500], device=args.device)

        def step(fn):
            if args.device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn(x, t).square().mean().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if args.device == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter() - start

        step(model)  # eager warm-up
        first = step(compiled)
        eager, comp = [], []
        for _ in range(args.repeats):
            eager.append(step(model))
            comp.append(step(compiled))
        e, c = statistics.median(eager), statistics.median(comp)
        row = (f"| {name} | {sum(p.numel() for p in model.parameters()) / 1e6:.2f} | {e:.3f} | {c:.3f} | {e / c:.2f}× "
               f"| {first:.0f} |")
        print(row, flush=True)
        lines.append(row)
    cmd = "python benchmarks/compile_step.py " + " ".join(argv if argv is not None else sys.argv[1:])
    section = "\n".join([
        f"## torch.compile on/off: training step ({args.device}, {datetime.date.today().isoformat()})", "",
        f"Command: `{cmd.strip()}`  ", f"Machine: {describe_machine(args.threads, args.device)} (load average "
        f"{load0:.1f} at the start)  ",
        f"Setup: grid {args.grid} tokens, batch 1, fp32, scan_impl=torch; one step = forward + backward + AdamW; "
        f"medians of {args.repeats} alternating eager/compiled steps after one of each.", "", *lines, ""])
    print(section)
    if not args.no_write:
        append_results(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
