"""Train the VAE and write the encode cache once per distinct VAE setting of a sweep.

A latent diffusion sweep compares denoisers on the same latents: every variant that shares
its ``vae.*`` overrides shares one VAE checkpoint and one encode cache (latents + flow
targets). A variant that changes the VAE (``vae.freq_comp=false``) gets its own. Both are
made by the public entry points (``medsora.fit`` for the VAE experiment, ``medsora.encode``
for the cache), in subprocesses, and skipped when a previous run finished them.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from medsora.sweeps.children import run_child

PREPARE_DIR = "_prepared"


def prepare(vae_experiment: str, base: str, overrides: Sequence[str], common: Sequence[str], out_dir: Path,
            log) -> list[str]:
    """VAE checkpoint + encode cache for one VAE setting; returns the overrides that point a run at them.

    Args:
        vae_experiment: the ``stage: vae`` experiment to train (e.g. ``vae_demo``).
        base: the sweep's diffusion experiment (its data settings define the cache).
        overrides: the ``vae.*`` overrides of this setting.
        common: overrides every run gets (the sweep's command-line extras).
        out_dir: the sweep folder; everything goes to ``out_dir/_prepared/<key>``.
        log: an open text file receiving the subprocesses' output.
    """
    key = hashlib.sha256("\n".join([vae_experiment, base, *overrides]).encode()).hexdigest()[:10]
    folder = (out_dir / PREPARE_DIR / key).resolve()
    done = folder / "prepared.json"
    if done.is_file():
        return json.loads(done.read_text())["overrides"]
    folder.mkdir(parents=True, exist_ok=True)
    vae_runs = folder / "vae"
    train = [sys.executable, "-m", "medsora.fit", f"experiment={vae_experiment}", *overrides, *common,
             f"out_dir={vae_runs}", "trainer.enable_progress_bar=false"]
    if any(vae_runs.glob("*/version_*/checkpoints/*.ckpt")):
        train.append("ckpt=last")  # an interrupted sweep: continue its VAE
    log.write("$ " + " ".join(train) + "\n")
    log.flush()
    if run_child(train, log) != 0:  # dies with the sweep (medsora.sweeps.children)
        raise subprocess.CalledProcessError(1, train)
    ckpts = sorted(vae_runs.rglob("last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not ckpts:
        raise RuntimeError(f"the VAE experiment '{vae_experiment}' wrote no last.ckpt under {vae_runs}")
    result = [f"vae.ckpt={ckpts[-1]}", f"data.cache={folder / 'cache'}"]
    encode = [sys.executable, "-m", "medsora.encode", f"experiment={base}", *overrides, *common, *result,
              "--no-progress"]
    log.write("$ " + " ".join(encode) + "\n")
    log.flush()
    if run_child(encode, log) != 0:
        raise subprocess.CalledProcessError(1, encode)
    done.write_text(json.dumps({"vae_experiment": vae_experiment, "vae_overrides": list(overrides),
                                "overrides": result}, indent=2))
    return result
