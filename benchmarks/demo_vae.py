"""The demo VAE's quality per CPU-second (issue 19, item 3: the demo's contact sheet without block seams).

Trains experiment ``vae_demo`` (the real ``VAEModule`` + Trainer stack, the demo's 64 px clips)
once per candidate setting, each in its own single-threaded process (``OMP_NUM_THREADS=1``,
``data.num_workers=0`` so that data loading is in the process's CPU time), and records the
validation PSNR on the full 64×64 px held-out demo clips (every val clip, centre, 17 frames)
against the process CPU time spent training (validation excluded) at each validation. The
shared machine's load changes wall time, not CPU time: candidates compare at equal CPU-s.

    python benchmarks/demo_vae.py                       # every candidate; appends to RESULTS.md
    python benchmarks/demo_vae.py --only base crop32 --jobs 2
    python benchmarks/demo_vae.py --quick               # 10 steps each; RESULTS.md untouched
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from machine_info import append_results, describe_machine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# name -> (overrides of vae_demo, steps, validate every): sized to ~200-300 CPU-s of training each
CANDIDATES = {
    "base": ([], 240, 60),  # vae_demo as on main: 2 clips of 64 px a step
    "crop32": (["data.train_crop=32"], 960, 240),  # 2 random 32 px windows a step
    "crop32_b4": (["data.train_crop=32", "data.batch_size=4"], 480, 120),
    "crop32_lr4e-3": (["data.train_crop=32", "vae.lr=4e-3"], 960, 240),
    "crop32_noffl": (["data.train_crop=32", "vae.ffl_weight=0"], 960, 240),
    "crop32_nofc": (["data.train_crop=32", "vae.freq_comp=false"], 960, 240),
    "bilinear": (["vae.upsample=bilinear"], 240, 60),  # the decoder upsamples bilinearly, not nearest
    "shortcut": (["vae.shortcut=true"], 240, 60),  # DC-AE-style colour shortcuts around the VAE
    "shortcut_cosine": (["vae.shortcut=true", "train.lr_schedule=cosine"], 240, 60),
    "shortcut_bilinear": (["vae.shortcut=true", "vae.upsample=bilinear"], 240, 60),
    "shortcut_lc16": (["vae.shortcut=true", "vae.latent_channels=16"], 240, 60),  # CogVideoX's 16 latent channels
    "shortcut_lc16_cosine": (["vae.shortcut=true", "vae.latent_channels=16", "train.lr_schedule=cosine"], 240, 60),
    "shortcut_crop32_b4": (["vae.shortcut=true", "data.train_crop=32", "data.batch_size=4"], 480, 120),
    "bilinear_crop32_b4": (["vae.upsample=bilinear", "data.train_crop=32", "data.batch_size=4"], 480, 120),
}


def worker(name: str, overrides: list[str], steps: int, every: int, out_dir: str) -> dict:
    """One candidate in this process: [(step, training CPU-s, val PSNR)] at each validation."""
    import torch
    from lightning.pytorch.callbacks import Callback

    from medsora.config import compose
    from medsora.training import stage
    from medsora.training.demo import data_overrides

    torch.set_num_threads(1)
    curve, spent = [], {"val": 0.0, "start": 0.0}

    class CpuClock(Callback):
        def on_train_start(self, trainer, module):  # the clock starts after data set-up and model build
            spent["began"] = time.process_time()

        def on_validation_start(self, trainer, module):
            spent["start"] = time.process_time()

        def on_validation_end(self, trainer, module):
            spent["val"] += time.process_time() - spent["start"]
            if trainer.global_step > 0:
                curve.append((trainer.global_step, spent["start"] - spent["val_before"] - spent["began"],
                              float(trainer.callback_metrics["val/psnr"])))
            spent["val_before"] = spent["val"]

    spent["val_before"] = 0.0
    data = data_overrides(compose("demo").data)
    cfg = compose("vae_demo", [*data, *overrides, f"trainer.max_steps={steps}", f"trainer.val_check_interval={every}",
                               "trainer.limit_val_batches=1.0", f"trainer.checkpoint_every_n_steps={steps}",
                               "trainer.enable_progress_bar=false", "data.num_workers=0", "vae.log_videos=0",
                               f"out_dir={out_dir}"])
    stage.fit_stage(cfg, callbacks=[CpuClock()])
    return {"name": name, "overrides": overrides, "curve": curve, "cpu_total": time.process_time()}


def run_candidate(name: str, steps_scale: float, out_root: Path) -> dict:
    overrides, steps, every = CANDIDATES[name]
    steps, every = max(2, int(steps * steps_scale)), max(1, int(every * steps_scale))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = out_root / name
    proc = subprocess.run([sys.executable, __file__, "--worker", name, "--steps", str(steps), "--every", str(every),
                           "--out", str(out)], env=env, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode:
        raise RuntimeError(f"candidate {name} failed:\n{proc.stderr[-3000:]}")
    return json.loads((out / "result.json").read_text())  # not stdout: Lightning prints there too


def table(results: list[dict]) -> str:
    lines = ["| candidate | overrides | step | training CPU-s | val PSNR (dB, 64 px) |",
             "|---|---|---:|---:|---:|"]
    for r in results:
        for step, cpu, psnr in r["curve"]:
            lines.append(f"| {r['name']} | {' '.join(r['overrides']) or '(vae_demo)'} | {step} | {cpu:.0f} | "
                         f"{psnr:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=list(CANDIDATES), help="candidates to run (default: all)")
    parser.add_argument("--jobs", type=int, default=1, help="candidates at once (one CPU each)")
    parser.add_argument("--quick", action="store_true", help="10 steps per candidate, RESULTS.md untouched")
    parser.add_argument("--keep", help="keep each candidate's run (TensorBoard, checkpoint) under this folder")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--every", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = worker(args.worker, CANDIDATES[args.worker][0], args.steps, args.every, args.out)
        (Path(args.out) / "result.json").write_text(json.dumps(result))
        return
    names = args.only or list(CANDIDATES)
    scale = 10 / 240 if args.quick else 1.0
    began = time.time()
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:
        root = Path(args.keep) if args.keep else Path(tmp)
        results = list(pool.map(lambda n: run_candidate(n, scale, root), names))
    text = table(results)
    print(text)
    if not args.quick:
        command = "python benchmarks/demo_vae.py " + " ".join(sys.argv[1:])
        append_results(f"## Demo VAE: val PSNR per training CPU-second (issue 19)\n\n`{command}`\n\n"
                       f"{describe_machine(threads=1)}\nwall {time.time() - began:.0f} s for {len(names)} candidates "
                       f"({args.jobs} at once)\n\n{text}")


if __name__ == "__main__":
    main()
