"""Run a sweep's variants as separate training processes and gather the results.

Each variant runs ``python -m medsora.fit experiment=BASE <overrides> name=V out_dir=OUT/V``
in its own process (so a crash or an out-of-memory in one variant loses nothing of the
others), one after another, or several at a time: one per device given, or ``jobs`` at a
time on the CPU. A finished variant leaves ``OUT/V/result.json``; a rerun skips it, and resumes a
variant that was interrupted (``ckpt=last``: its newest checkpoint). Children die with the sweep
(:mod:`medsora.sweeps.children`).

With ``prepare_vae`` the VAEs and encode caches (one per distinct VAE setting) are made first, in
the same slots. With ``jobs`` > 1 on the CPU and no ``OMP_NUM_THREADS`` set, each child gets
``cpus // jobs`` threads, so parallel children do not oversubscribe the cores. Every row records
its child's CPU seconds (``cpu_s``); ``results.md`` ends with the sweep's total CPU time.
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
from medsora.sweeps.spec import SweepSpec, Variant, prepare_overrides, validate

RESULT_FILE = "result.json"


def backbone_cost(cfg) -> dict[str, float]:
    """``params_m`` and forward ``gflops`` per clip (batch 1, the run's latent grid) of a variant's denoiser."""
    from medsora.backbone.cost import count_parameters, forward_flops

    f, s = int(cfg.data.num_frames), int(cfg.data.size)
    from medsora.vae.select import latent_frames

    latent = (latent_frames(cfg.vae, f), s // 8, s // 8)
    flops, _ = forward_flops(cfg.model, cfg.vae.latent_channels, latent)
    return {"params_m": count_parameters(cfg.model, cfg.vae.latent_channels) / 1e6, "gflops": flops / 1e9}


def fit_command(spec: SweepSpec, variant: Variant, run_dir: Path, extra: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "medsora.fit", f"experiment={spec.base}", *variant.overrides, *extra,
            f"name={variant.name}", f"out_dir={run_dir}"]


def _evaluate(spec: SweepSpec, run_dir: Path, log, env: dict[str, str]) -> dict[str, Any]:
    """Sample from the variant's last checkpoint and score it with medsora.evaluate."""
    ev = spec.evaluate
    ckpts = sorted(run_dir.rglob("last.ckpt"))
    if not ckpts:
        raise RuntimeError(f"no last.ckpt under {run_dir} to sample from")
    samples, scores = run_dir / "samples", run_dir / "eval.json"
    sample_cmd = [sys.executable, "-m", "medsora.sample", "--ckpt", str(ckpts[-1]), "--num", str(ev.get("num", 16)),
                  "--out", str(samples), "--steps", str(ev.get("steps", 50))]
    if ev.get("sampler"):  # else the run's own diffusion.sampler, which fits its objective
        sample_cmd += ["--sampler", str(ev["sampler"])]
    if run_child(sample_cmd, log, env).returncode != 0:
        raise subprocess.CalledProcessError(1, sample_cmd)
    eval_cmd = [sys.executable, "-m", "medsora.evaluate", "--real", str(ev.get("real", "demo")), "--fake", str(samples),
                "--out", str(scores)]
    if ev.get("metrics"):
        eval_cmd += ["--metrics", ",".join(ev["metrics"])]
    if run_child(eval_cmd, log, env).returncode != 0:
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
    env = {**os.environ, **(env or {})}
    with (run_dir / "train.log").open("a") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        child = run_child(cmd, log, env)
        row: dict[str, Any] = {"variant": variant.name, **(cost or {}), "cpu_s": round(child.cpu_s, 1)}
        if child.returncode != 0:
            row["status"] = f"failed (exit {child.returncode}, see {run_dir / 'train.log'})"
            return row
        row.update(results.summarize_run(run_dir))
        if spec.evaluate:
            row.update(_evaluate(spec, run_dir, log, env))
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
        threads = {} if "OMP_NUM_THREADS" in os.environ or jobs <= 1 else {
            "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // jobs))}
        for _ in range(max(1, jobs)):
            slots.put((threads, []))
    n_slots = slots.qsize()

    rows: dict[str, dict[str, Any]] = {}
    todo = []
    for variant in spec.variants:
        done = out_dir / variant.name / RESULT_FILE
        if done.is_file():
            rows[variant.name] = {**results.load_json(done), "status": "done (skipped: finished earlier)"}
        else:
            todo.append(variant)
    prepared: dict[tuple[str, ...], dict[str, Any]] = {}
    keys = {v.name: tuple(prepare_overrides(v.overrides, configs[v.name])) for v in spec.variants}
    if spec.prepare_vae:  # one VAE + cache per distinct VAE setting (and clips), before any variant trains

        def prep(key: tuple[str, ...]) -> None:
            env, more = slots.get()
            try:
                prepared[key] = prepare(spec.prepare_vae, spec.base, key, [*extra, *more], out_dir,
                                        {**os.environ, **env}, spec.prepare_overrides)
            finally:
                slots.put((env, more))

        with ThreadPoolExecutor(max_workers=n_slots) as pool:
            list(pool.map(prep, dict.fromkeys(keys[v.name] for v in todo)))
    lock = threading.Lock()
    bar = tqdm(total=len(todo), desc=f"sweep {spec.name}", unit="variant")

    def work(variant: Variant) -> None:
        env, more = slots.get()
        try:
            pointers = prepared[keys[variant.name]]["overrides"] if spec.prepare_vae else []
            row = run_variant(spec, variant, out_dir, costs[variant.name], [*extra, *more, *pointers], env)
        finally:
            slots.put((env, more))
        with lock:
            rows[variant.name] = row
            bar.update(1)
            bar.set_postfix_str(f"{variant.name}: {row['status'][:20]}")

    with ThreadPoolExecutor(max_workers=n_slots) as pool:
        list(pool.map(work, todo))
    bar.close()

    ordered = [rows[v.name] for v in spec.variants]
    results.write_tables(ordered, out_dir, footer=results.cpu_footer(
        ordered, [p["cpu_s"] for p in prepared.values()], jobs=n_slots))
    curves = {v.name: results.loss_curve(out_dir / v.name) for v in spec.variants}
    results.plot_curves(curves, out_dir / "loss_curves.png", f"sweep {spec.name} ({spec.base})")
    return ordered
