"""Train the VAE and write the encode cache once per distinct VAE setting of a sweep.

A latent diffusion sweep compares denoisers on the same latents: every variant that shares
its ``vae.*`` overrides shares one VAE checkpoint and one encode cache (latents + flow
targets). A variant that changes the VAE (``vae.freq_comp=false``) gets its own. Both are
made by the public entry points (``medsora.fit`` for the VAE experiment, ``medsora.encode``
for the cache), in subprocesses, and skipped when a previous run finished them. The VAE is
trained on the clips the denoisers see (the ``data.*`` keys that define a cache, from the
sweep's base experiment with the sweep's overrides: :func:`medsora.sweeps.spec.prepare_overrides`),
as the demo does. Each setting logs to ``_prepared/<key>/prepare.log`` and records its CPU time.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

from medsora.sweeps.children import run_child

PREPARE_DIR = "_prepared"


def prepare(vae_experiment: str, base: str, overrides: Sequence[str], common: Sequence[str], out_dir: Path,
            env: Optional[dict] = None, train_overrides: Sequence[str] = ()) -> dict:
    """VAE checkpoint + encode cache for one VAE setting.

    Args:
        vae_experiment: the ``stage: vae`` experiment to train (e.g. ``vae_demo``).
        base: the sweep's diffusion experiment (its data settings define the cache).
        overrides: the ``vae.*`` overrides of this setting and the ``data.*`` keys of its clips.
        common: overrides every run gets (the sweep's command-line extras).
        out_dir: the sweep folder; everything goes to ``out_dir/_prepared/<key>``.
        env: the children's environment (default: this process's).
        train_overrides: overrides of the VAE training only (the sweep file's ``prepare_overrides``,
            e.g. a shorter ``trainer.max_steps``).
    Returns:
        ``{"overrides": [...], "cpu_s": float}``: the overrides that point a run at the VAE and cache,
        and the CPU seconds the VAE training and the encoding took (recorded when they ran).
    """
    key = hashlib.sha256("\n".join([vae_experiment, base, *overrides, *train_overrides]).encode()).hexdigest()[:10]
    folder = (out_dir / PREPARE_DIR / key).resolve()
    done = folder / "prepared.json"
    if done.is_file():
        record = json.loads(done.read_text())
        return {"overrides": record["overrides"], "cpu_s": record.get("cpu_s", float("nan"))}
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "prepare.log").open("a") as log:
        return _prepare(vae_experiment, base, overrides, common, folder, log, env, train_overrides)


def _prepare(vae_experiment: str, base: str, overrides: Sequence[str], common: Sequence[str], folder: Path,
             log, env: Optional[dict], train_overrides: Sequence[str]) -> dict:
    vae_runs = folder / "vae"
    train = [sys.executable, "-m", "medsora.fit", f"experiment={vae_experiment}", *overrides, *train_overrides,
             *common, f"out_dir={vae_runs}", "trainer.enable_progress_bar=false"]
    if any(vae_runs.glob("*/version_*/checkpoints/*.ckpt")):
        train.append("ckpt=last")  # an interrupted sweep: continue its VAE
    log.write("$ " + " ".join(train) + "\n")
    log.flush()
    trained = run_child(train, log, env)  # dies with the sweep (medsora.sweeps.children)
    if trained.returncode != 0:
        raise subprocess.CalledProcessError(trained.returncode, train)
    ckpts = sorted(vae_runs.rglob("last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not ckpts:
        raise RuntimeError(f"the VAE experiment '{vae_experiment}' wrote no last.ckpt under {vae_runs}")
    result = [f"vae.ckpt={ckpts[-1]}", f"data.cache={folder / 'cache'}"]
    encode = [sys.executable, "-m", "medsora.encode", f"experiment={base}", *overrides, *common, *result,
              "--no-progress"]
    log.write("$ " + " ".join(encode) + "\n")
    log.flush()
    encoded = run_child(encode, log, env)
    if encoded.returncode != 0:
        raise subprocess.CalledProcessError(encoded.returncode, encode)
    cpu = {"vae_cpu_s": round(trained.cpu_s, 1), "encode_cpu_s": round(encoded.cpu_s, 1),
           "cpu_s": round(trained.cpu_s + encoded.cpu_s, 1)}
    (folder / "prepared.json").write_text(json.dumps({"vae_experiment": vae_experiment, "vae_overrides": list(overrides),
                                                      "overrides": result, **cpu}, indent=2))
    return {"overrides": result, "cpu_s": cpu["cpu_s"]}
