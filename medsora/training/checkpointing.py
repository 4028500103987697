"""Checkpoints that are never half-written, checked on every load, and found by ``ckpt=last``.

Lightning's default ``_atomic_save`` goes through an fsspec transaction whose temporary file
lives in the system temp folder; when that is another file system the final move is a copy, so
a crash can leave a truncated checkpoint. :class:`AtomicCheckpointIO` writes beside the target,
fsyncs, and ``os.replace``-s (atomic on POSIX and Windows within one file system); a process
killed mid-write leaves only a ``.NAME.*.tmp`` file, removed by :func:`remove_stale_temporaries`
on the next start.

Every load goes through :func:`load_checkpoint`, which first checks the file with
:func:`verify_checkpoint`: ``torch.save`` writes a zip archive whose members carry CRC-32
checksums that ``torch.load`` never reads, so an empty, truncated or bit-flipped file is named
here, with its cause, instead of failing deep in the unpickler (or loading damaged weights).

``ckpt=last`` (:func:`resolve_ckpt`) means the newest readable state of the run's newest version
folder, wherever the folder lives: ``last.ckpt``, any ``last-vN.ckpt`` an older Lightning left
after a move, and every ``step=N.ckpt``, by global step; a damaged newest file is reported and the
next one used.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, Optional

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

from medsora.pretrained.checkpoint_file import CheckpointError, atomic_torch_save, load_checkpoint, verify_checkpoint

__all__ = ["AtomicCheckpointIO", "CheckpointError", "RunCheckpoint", "atomic_torch_save", "verify_checkpoint",
           "load_checkpoint", "checkpoint_step", "find_last_checkpoint", "resolve_ckpt", "remove_stale_temporaries"]

log = logging.getLogger("medsora.checkpoint")

_TMP_GLOB = ".*.ckpt.*.tmp"  # what atomic_torch_save names its temporary files
_STEP = re.compile(r"step=(\d+)")
_VERSION = re.compile(r"version_(\d+)$")


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files of checkpoint writes that never finished (a ``kill -9`` mid-write).

    Call it before training starts (one process), when no write of this run can be in flight.
    Returns the removed files.
    """
    removed = []
    for tmp in Path(folder).glob(f"version_*/checkpoints/{_TMP_GLOB}"):
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    if removed:
        log.warning("removed %d unfinished checkpoint write(s) left by an interrupted run: %s", len(removed),
                    ", ".join(str(p) for p in removed[:3]))
    return removed


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O: atomic writes, checked ``weights_only`` reads."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO does not take storage_options")
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(self, path, map_location=None, weights_only: Optional[bool] = None) -> dict[str, Any]:
        return load_checkpoint(path, map_location if map_location is not None else "cpu")


class RunCheckpoint(ModelCheckpoint):
    """``step=N.ckpt`` every ``every_n_train_steps`` steps plus ``last.ckpt``, and always the final state.

    Lightning's callback saves only on multiples of ``every_n_train_steps``: with ``max_steps=30`` and
    a save every 20 steps, ``last.ckpt`` would hold step 20. Here the step that reaches ``max_steps``
    (or the end of an epoch-limited run) is saved as well, in the same hook as every other save, so it
    resumes exactly. Files are overwritten in place (no ``-v1`` copies), so a moved run folder keeps
    writing ``last.ckpt``.
    """

    def __init__(self, dirpath, every_n_train_steps: int):
        super().__init__(dirpath=dirpath, filename="step={step:07d}", auto_insert_metric_name=False,
                         every_n_train_steps=int(every_n_train_steps), save_top_k=-1, save_last=True,
                         enable_version_counter=False)

    def _save_final(self, trainer) -> None:
        if self._should_skip_saving_checkpoint(trainer):  # also: this step is saved already
            return
        candidates = self._monitor_candidates(trainer)
        self._save_topk_checkpoint(trainer, candidates)
        self._save_last_checkpoint(trainer, candidates)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if 0 < trainer.max_steps <= trainer.global_step:
            self._save_final(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        self._save_final(trainer)  # epoch-limited runs end outside a batch
        super().on_train_end(trainer, pl_module)


def checkpoint_step(path: str | os.PathLike) -> Optional[int]:
    """The global step a checkpoint holds: from a ``step=N`` name, else read (memory-mapped) from the file.

    Returns None when the file cannot be read.
    """
    path = Path(path)
    match = _STEP.search(path.name)
    if match:
        return int(match.group(1))
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("global_step", -1))
    except Exception:  # damaged: verify_checkpoint names the cause
        return None


def _version_index(folder: Path) -> int:
    match = _VERSION.search(folder.name)
    return int(match.group(1)) if match else -1


def find_last_checkpoint(run_root: str | os.PathLike) -> Optional[Path]:
    """The newest readable checkpoint of the run's newest version folder (see :func:`resolve_ckpt`)."""
    return _newest_state(Path(run_root))[0]


def _newest_state(run_root: Path) -> tuple[Optional[Path], list[str]]:
    """(newest readable checkpoint or None, the reasons newer files were passed over)."""
    versions = sorted((p for p in run_root.glob("version_*") if any(p.glob("checkpoints/*.ckpt"))),
                      key=lambda p: (_version_index(p), p.stat().st_mtime))
    if not versions:
        return None, []
    files = list(versions[-1].glob("checkpoints/*.ckpt"))
    steps = {f: checkpoint_step(f) for f in files}
    # newest step first; at equal steps last.ckpt before step=N.ckpt before last-vN.ckpt
    rank = lambda f: (steps[f] if steps[f] is not None else -1, f.name == "last.ckpt", f.name.startswith("step="))
    skipped = []
    for f in sorted(files, key=rank, reverse=True):
        try:
            verify_checkpoint(f)
        except CheckpointError as err:
            skipped.append(str(err))
            continue
        if steps[f] is None:
            skipped.append(f"{f}: cannot be read")
            continue
        return f, skipped
    return None, skipped


def resolve_ckpt(ckpt: Optional[str], run_root: str | os.PathLike) -> Optional[Path]:
    """Turn the ``ckpt`` config value into a file: ``None``, ``last`` or a path.

    ``last`` is the newest readable state of the run (see the module docstring); each newer file that
    had to be passed over is logged with its cause.

    Raises:
        FileNotFoundError: naming what was looked for and the fix.
        CheckpointError: ``last`` found only damaged files (each named with its cause).
    """
    if not ckpt:
        return None
    if ckpt == "last":
        run_root = Path(run_root)
        last, skipped = _newest_state(run_root)
        if last is None and skipped:
            raise CheckpointError(f"ckpt=last: no readable checkpoint in {run_root}: " + "; ".join(skipped[:3]))
        if last is None:
            raise FileNotFoundError(
                f"ckpt=last: no {run_root}/version_*/checkpoints/*.ckpt yet; start without ckpt=, or check "
                "name= and out_dir= (they pick the run folder)"
            )
        for reason in skipped:
            log.warning("ckpt=last: skipping %s", reason)
        if skipped:
            log.warning("ckpt=last: resuming from %s (step %s), the newest readable checkpoint", last,
                        checkpoint_step(last))
        return last
    path = Path(ckpt).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"ckpt={ckpt}: no such file (give a .ckpt path or ckpt=last)")
    return path
