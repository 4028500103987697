"""Run a sweep's variants as separate training processes and gather the results.

Each variant runs ``python -m medsora.fit experiment=BASE <overrides> name=V out_dir=OUT/V``
in its own process (so a crash or an out-of-memory in one variant loses nothing of the
others), one after another, or several at a time: one per device given, or ``jobs`` at a
time on the CPU. A finished variant leaves ``OUT/V/result.json``; a rerun skips it, and resumes a
variant that was interrupted (``ckpt=last``: its newest checkpoint). Children die with the sweep
(:mod:`medsora.sweeps.children`).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from queue import Queue
from typing import Any, Sequence

from tqdm.auto import tqdm

from medsora.sweeps import results
from medsora.sweeps.children import run_child
from medsora.sweeps.prepare import prepare
from medsora.sweeps.spec import SweepSpec, Variant, vae_only, validate

RESULT_FILE = "result.json"


def backbone_cost(cfg) -> dict[str, float]:
    """``params_m`` and forward ``gflops`` per clip (batch 1, the run's latent grid) of a variant's denoiser."""
    from medsora.backbone.cost import count_parameters, forward_flops

    f, s = int(cfg.data.num_frames), int(cfg.data.size)
    latent = (1 + (f - 1) // 4, s // 8, s // 8)
    flops, _ = forward_flops(cfg.model, cfg.vae.latent_channels, latent)
    return {"params_m": count_parameters(cfg.model, cfg.vae.latent_channels) / 1e6, "gflops": flops / 1e9}


def fit_command(spec: SweepSpec, variant: Variant, run_dir: Path, extra: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "medsora.fit", f"experiment={spec.base}", *variant.overrides, *extra,
            f"name={variant.name}", f"out_dir={run_dir}"]


def _evaluate(spec: SweepSpec, run_dir: Path, log) -> dict[str, Any]:
    """Sample from the variant's last checkpoint and score it with medsora.evaluate."""
    ev = spec.evaluate
    ckpts = sorted(run_dir.rglob("last.ckpt"))
    if not ckpts:
        raise RuntimeError(f"no last.ckpt under {run_dir} to sample from")
    samples, scores = run_dir / "samples", run_dir / "eval.json"
    sample_cmd = [sys.executable, "-m", "medsora.sample", "--ckpt", str(ckpts[-1]), "--num", str(ev.get("num", 16)),
                  "--out", str(samples), "--steps", str(ev.get("steps", 50)), "--sampler", str(ev.get("sampler", "ddim"))]
    if run_child(sample_cmd, log) != 0:
        raise subprocess.CalledProcessError(1, sample_cmd)
    eval_cmd = [sys.executable, "-m", "medsora.evaluate", "--real", str(ev.get("real", "demo")), "--fake", str(samples),
                "--out", str(scores)]
    if ev.get("metrics"):
        eval_cmd += ["--metrics", ",".join(ev["metrics"])]
    if run_child(eval_cmd, log) != 0:
        raise subprocess.CalledProcessError(1, eval_cmd)
    data = results.load_json(scores)
    metrics = data.get("metrics", data)
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float))}


def variant_dir(out_dir: Path, name: str) -> Path:
    """``OUT/NAME``, refusing a name that would leave ``OUT`` (names are sanitised by the spec already)."""
    path = (out_dir / name).resolve()
    if name in ("", ".", "..") or path.parent != out_dir.resolve():
        raise ValueError(f"sweep variant name {name!r} would write outside {out_dir}")
    return out_dir / name


def run_variant(spec: SweepSpec, variant: Variant, out_dir: Path, cost: dict[str, float] | None,
                extra: Sequence[str] = (), env: dict[str, str] | None = None) -> dict[str, Any]:
    """Train one variant in a subprocess; returns its result row (also written to result.json)."""
    run_dir = variant_dir(out_dir, variant.name)
    run_dir.mkdir(parents=True, exist_ok=True)
    cmd = fit_command(spec, variant, run_dir, extra)
    if any((run_dir / variant.name).glob("version_*/checkpoints/*.ckpt")):
        cmd.append("ckpt=last")  # an earlier sweep was interrupted in this variant: continue it
    start = time.time()
    with (run_dir / "train.log").open("a") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        returncode = run_child(cmd, log, env={**os.environ, **(env or {})})
        row: dict[str, Any] = {"variant": variant.name, **(cost or {})}
        if returncode != 0:
            row["status"] = f"failed (exit {returncode}, see {run_dir / 'train.log'})"
            return row
        row.update(results.summarize_run(run_dir))
        if spec.evaluate:
            row.update(_evaluate(spec, run_dir, log))
    row["status"] = "done"
    row["wall_s"] = round(time.time() - start, 1)
    (run_dir / RESULT_FILE).write_text(json.dumps(row, indent=2))
    return row


def run_sweep(spec: SweepSpec, out_dir: Path, devices: Sequence[str] = (), jobs: int = 1,
              extra: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Validate all variants, run the unfinished ones, write results.csv/.md and loss_curves.png."""
    configs = validate(spec, list(extra))  # fails before anything runs
    out_dir.mkdir(parents=True, exist_ok=True)
    costs = {name: backbone_cost(cfg) if cfg.stage == "diffusion" else None for name, cfg in configs.items()}

    slots: Queue = Queue()
    if devices:
        for device in devices:
            slots.put(({"CUDA_VISIBLE_DEVICES": str(device)}, ["trainer.devices=1"]))
    else:
        for _ in range(max(1, jobs)):
            slots.put(({}, []))

    rows: dict[str, dict[str, Any]] = {}
    todo = []
    for variant in spec.variants:
        done = out_dir / variant.name / RESULT_FILE
        if done.is_file():
            rows[variant.name] = {**results.load_json(done), "status": "done (skipped: finished earlier)"}
        else:
            todo.append(variant)
    prepared: dict[tuple[str, ...], list[str]] = {}
    if spec.prepare_vae:  # one VAE + cache per distinct vae.* setting, before any variant trains
        with (out_dir / "prepare.log").open("a") as log:
            for key in dict.fromkeys(tuple(vae_only(v.overrides)) for v in todo):
                prepared[key] = prepare(spec.prepare_vae, spec.base, key, extra, out_dir, log)
    lock = threading.Lock()
    bar = tqdm(total=len(todo), desc=f"sweep {spec.name}", unit="variant")

    def work(variant: Variant) -> None:
        env, more = slots.get()
        try:
            pointers = prepared.get(tuple(vae_only(variant.overrides)), [])
            row = run_variant(spec, variant, out_dir, costs[variant.name], [*extra, *more, *pointers], env)
        finally:
            slots.put((env, more))
        with lock:
            rows[variant.name] = row
            bar.update(1)
            bar.set_postfix_str(f"{variant.name}: {row['status'][:20]}")

    with ThreadPoolExecutor(max_workers=slots.qsize()) as pool:
        list(pool.map(work, todo))
    bar.close()

    ordered = [rows[v.name] for v in spec.variants]
    results.write_tables(ordered, out_dir)
    curves = {v.name: results.loss_curve(out_dir / v.name) for v in spec.variants}
    results.plot_curves(curves, out_dir / "loss_curves.png", f"sweep {spec.name} ({spec.base})")
    return ordered
