"""Throughput of the data pipeline on the embedded demo set, in clips per second.

Generates the demo set into a fresh temporary cache (timed: the issue asks for under 30 s on
2 cores), then iterates ``VideoDataModule.train_dataloader()`` — the loader ``medsora.fit`` trains
through (seeded per item, resumable, rank-sharding sampler) — with 0 and 2 DataLoader
workers: decode (PyAV) -> temporal sampling -> short-side resize + random crop -> [-1, 1].
Each repeat builds a fresh data module; the first epoch ("cold") includes starting the
workers, the second ("warm") reuses the persistent workers. Figures are medians over
``--repeats``; the 2-worker/0-worker ratio is measured in the same run.

    python benchmarks/data.py            # 64 px, 17 frames, 3 repeats, appends to benchmarks/RESULTS.md
    python benchmarks/data.py --quick    # 32 px, 1 repeat, nothing written
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from machine_info import append_results, describe_machine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

def _epoch(loader) -> tuple[int, float]:
    start = time.perf_counter()
    clips = sum(batch["video"].shape[0] for batch in loader)
    return clips, time.perf_counter() - start


def measure(workers: int, args) -> dict:
    import torch
    from omegaconf import OmegaConf

    from medsora.data.datamodule import VideoDataModule
    from medsora.data.schema import DataConfig

    cold, warm = [], []
    for repeat in range(args.repeats):
        torch.manual_seed(repeat)
        cfg = OmegaConf.structured(DataConfig(root="demo", size=args.size, num_frames=args.num_frames,
                                              batch_size=args.batch_size, num_workers=workers, crop="random",
                                              adaptive_interval=args.adaptive))
        dm = VideoDataModule(cfg, seed=repeat)
        dm.prepare_data()
        dm.setup("fit")
        loader = dm.train_dataloader()
        clips, seconds = _epoch(loader)
        cold.append(clips / seconds)
        clips, seconds = _epoch(loader)
        warm.append(clips / seconds)
        del loader
    return {"workers": workers, "cold": statistics.median(cold), "warm": statistics.median(warm), "clips": clips}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32 px, 1 repeat, nothing written")
    parser.add_argument("--size", type=int, default=None, help="data.size (default 64; 32 with --quick)")
    parser.add_argument("--num-frames", type=int, default=17)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=None, help="default 3 (1 with --quick)")
    parser.add_argument("--adaptive", action="store_true", help="Bora's adaptive interval instead of stride 1")
    args = parser.parse_args()
    args.size = args.size or (32 if args.quick else 64)
    args.repeats = args.repeats or (1 if args.quick else 3)

    import torch

    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["MEDSORA_CACHE"] = cache
        from medsora.data.demo import ensure_demo

        start = time.perf_counter()
        folder = ensure_demo()
        generation = time.perf_counter() - start
        size_mb = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20
        rows = [measure(workers, args) for workers in (0, 2)]

    ratio = rows[1]["warm"] / rows[0]["warm"]
    table = [
        f"Demo set generation (100 clips, {size_mb:.0f} MB of .mp4): {generation:.1f} s wall.",
        "",
        f"| workers | clips/s, first epoch (incl. worker start) | clips/s, second epoch | clips per epoch |",
        "|---|---|---|---|",
    ]
    table += [f"| {r['workers']} | {r['cold']:.1f} | {r['warm']:.1f} | {r['clips']} |" for r in rows]
    table += ["", f"2 workers / 0 workers (second epoch): {ratio:.2f}×. Without workers the main process also "
                  "collates, and on a loaded machine its multi-threaded ops contend for the cores."]
    text = "\n".join(table)
    print(text)
    if args.quick:
        return
    command = "python benchmarks/data.py" + (f" --size {args.size}" if args.size != 64 else "") + \
              (" --adaptive" if args.adaptive else "")
    section = "\n".join([
        "",
        f"## Data pipeline: VideoDataModule on the demo set ({time.strftime('%Y-%m-%d')})",
        "",
        f"Command: `{command}`",
        f"Machine: {describe_machine()} (load average {load[0]:.1f} at the start).",
        f"Settings: data.size={args.size}, num_frames={args.num_frames}, batch_size={args.batch_size}, "
        f"{'adaptive interval' if args.adaptive else 'frame_stride=1'}, random crop; medians of {args.repeats} repeats.",
        "",
        text,
        "",
    ])
    print(f"\nappended to {append_results(section)}")


if __name__ == "__main__":
    main()
