"""The embedded demo data set: ~100 short medical-looking clips generated from real images.

Four modalities built from material that installed packages ship (see
:mod:`medsora.data.demo.assets`): endoscopy (a camera path over mucosa),
ultrasound (a sector view of a cardiac cine loop with speckle and pulsation),
MRI (slice scrolling through a brain volume with breathing-like deformation) and
cell microscopy (cells migrating and dividing). Every clip is a real ``.mp4``
listed in ``manifest.jsonl`` (path, caption, modality, split, frames, height,
width, fps, and the generator's physically meaningful parameters as attribute
columns, see :data:`ATTRIBUTES`; a column a modality does not have is absent from
its rows) and is read back through the same code as real data.

Generation is deterministic (same seed -> byte-identical files) and atomic: it
writes into a temporary folder that is renamed into place when complete, so an
interrupted run never leaves a half-written set behind.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from medsora.data.demo.assets import load_assets
from medsora.data.demo.endoscopy import make_endoscopy
from medsora.data.demo.microscopy import make_microscopy
from medsora.data.demo.mri import make_mri
from medsora.data.demo.render import to_uint8
from medsora.data.demo.ultrasound import make_ultrasound
from medsora.data.demo.writer import write_mp4

__all__ = ["MODALITIES", "DEMO_VERSION", "ATTRIBUTES", "ClipPlan", "cache_root", "demo_folder", "plan_clips", "generate_demo", "ensure_demo"]

DEMO_VERSION = 3
"""Bumped whenever the files or the manifest change (2: attribute columns; 3: a strong ultrasound heartbeat,
systolic swelling and brightening, in 17-frame ECG-triggered clips); part of the folder name
and of an encode cache's fingerprint, so caches of another version are refused."""
ATTRIBUTES = {
    "ultrasound": {"heart_rate": "beats per minute (50, 65, 80, 100, 120)", "gain": "display gain (0.8, 1.1, 1.4)",
                   "probe_tilt": "peak probe sweep in degrees (0, 4, 8)"},
    "endoscopy": {"camera_motion": "pans | advances | withdraws | rotates",
                  "camera_speed": "relative speed of the motion (0.5, 1.0, 1.7)"},
    "mri": {"breathing_rate": "deformation cycles per minute (22.5, 30, 45)", "scroll": "up | down"},
    "microscopy": {"cell_count": "cells at the start (4-10)", "divisions": "cells that divide (0-3)",
                   "migration": "slow | fast"},
}
"""Manifest attribute columns per modality and what they mean (for ``cond.attributes``)."""
MODALITIES = ("endoscopy", "ultrasound", "mri", "microscopy")
_MAKERS: dict[str, tuple[Callable, int]] = {  # generator, frames per second
    "endoscopy": (make_endoscopy, 12),
    "ultrasound": (make_ultrasound, 15),
    "mri": (make_mri, 6),
    "microscopy": (make_microscopy, 4),
}
_TRIGGERED = {"ultrasound": 17}
"""Modalities recorded as ECG-triggered acquisitions of a fixed length (v3): every clip starts at end-diastole,
so a 17-frame training clip holds the beat at a known phase (RESULTS.md, "Clinical control, fifth run")."""
_SIZES = ((64, 64), (96, 96), (128, 128), (96, 128), (128, 96), (80, 112))  # (height, width), even for H.264


@dataclass(frozen=True)
class ClipPlan:
    """What one demo clip will be; drawn from the seed alone so any clip can be rebuilt on its own."""

    index: int
    modality: str
    path: str  # relative to the demo folder
    split: str
    frames: int
    height: int
    width: int
    fps: int


def cache_root() -> Path:
    """``$MEDSORA_CACHE`` or ``~/.cache/medsora``."""
    return Path(os.environ.get("MEDSORA_CACHE", "~/.cache/medsora")).expanduser()


def demo_folder(root: Optional[os.PathLike] = None, seed: int = 0, num_clips: int = 100) -> Path:
    """Where the demo set of this seed and size lives: ``<root>/demo-v3-seed{seed}`` (``-n{num_clips}`` when not 100)."""
    name = f"demo-v{DEMO_VERSION}-seed{seed}" + ("" if num_clips == 100 else f"-n{num_clips}")
    return (Path(root).expanduser() if root is not None else cache_root()) / name


def _rng(seed: int, index: int, stream: str) -> np.random.Generator:
    """Independent streams per clip: its plan ("plan") and its content ("content")."""
    return np.random.default_rng([seed, index, ("plan", "content").index(stream)])


def plan_clips(seed: int = 0, num_clips: int = 100) -> list[ClipPlan]:
    """The clips of a demo set: modalities in turn, 17–33 frames (ultrasound 17), 64–128 px, every 10th clip of a modality in val."""
    plans = []
    for index in range(num_clips):
        modality = MODALITIES[index % len(MODALITIES)]
        number = index // len(MODALITIES)
        rng = _rng(seed, index, "plan")
        frames = _TRIGGERED.get(modality, int(rng.integers(17, 34)))
        height, width = _SIZES[int(rng.integers(len(_SIZES)))]
        plans.append(ClipPlan(index, modality, f"{modality}/{modality}_{number:03d}.mp4",
                              "val" if number % 10 == 9 else "train", frames, height, width, _MAKERS[modality][1]))
    return plans


@contextlib.contextmanager
def _one_thread():
    # Small tensors: one thread is faster than two fighting over a shared machine, and it keeps
    # float reductions in a fixed order.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def generate_demo(folder: Path, seed: int = 0, num_clips: int = 100) -> None:
    """Write the clips and ``manifest.jsonl`` into ``folder`` (created; should be empty)."""
    assets = load_assets()
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    with _one_thread():
        for plan in plan_clips(seed, num_clips):
            make, _ = _MAKERS[plan.modality]
            video, caption, attributes = make(assets, _rng(seed, plan.index, "content"), plan.frames, plan.height,
                                              plan.width)
            target = folder / plan.path
            target.parent.mkdir(parents=True, exist_ok=True)
            write_mp4(target, to_uint8(video), plan.fps)
            rows.append({"path": plan.path, "caption": caption, "modality": plan.modality, "split": plan.split,
                         "frames": plan.frames, "height": plan.height, "width": plan.width, "fps": plan.fps, **attributes})
    with open(folder / "manifest.jsonl", "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ensure_demo(root: Optional[os.PathLike] = None, seed: int = 0, num_clips: int = 100) -> Path:
    """The demo folder, generated on first use.

    Args:
        root: parent folder (default ``$MEDSORA_CACHE`` or ``~/.cache/medsora``).
        seed: generation seed; the same seed gives byte-identical files.
        num_clips: number of clips (spread evenly over the four modalities).
    Returns:
        The folder holding the ``.mp4`` clips and ``manifest.jsonl``.
    """
    if num_clips < 1:
        raise ValueError(f"data.demo_clips must be at least 1, got {num_clips}")
    final = demo_folder(root, seed, num_clips)
    if (final / "manifest.jsonl").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    # Leftovers of interrupted generations (their process is gone) are removed.
    for stale in final.parent.glob(f".{final.name}.tmp-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    temporary = final.parent / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(temporary, ignore_errors=True)
    try:
        generate_demo(temporary, seed, num_clips)
        os.rename(temporary, final)
    except OSError:
        # Another process (e.g. another DDP rank) finished first: keep its copy.
        shutil.rmtree(temporary, ignore_errors=True)
        if not (final / "manifest.jsonl").is_file():
            raise
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return final
