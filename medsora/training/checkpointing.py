"""Checkpoints that are never half-written, found by ``ckpt=last``, loaded with ``weights_only``.

Lightning's default ``_atomic_save`` goes through an fsspec transaction whose temporary file
lives in the system temp folder; when that is another file system the final move is a copy, so
a crash can leave a truncated checkpoint. :class:`AtomicCheckpointIO` writes beside the target,
fsyncs, and ``os.replace``-s (atomic on POSIX and Windows within one file system).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from medsora.pretrained.checkpoint_file import atomic_torch_save, load_checkpoint

__all__ = ["AtomicCheckpointIO", "atomic_torch_save", "load_checkpoint", "find_last_checkpoint", "resolve_ckpt"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O: atomic writes, ``weights_only`` reads."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO does not take storage_options")
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(self, path, map_location=None, weights_only: Optional[bool] = None) -> dict[str, Any]:
        return load_checkpoint(path, map_location if map_location is not None else "cpu")


def find_last_checkpoint(run_root: str | os.PathLike) -> Optional[Path]:
    """The newest ``last.ckpt`` under ``run_root`` (``<out_dir>/<name>``), or ``None``."""
    found = sorted(Path(run_root).glob("version_*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def resolve_ckpt(ckpt: Optional[str], run_root: str | os.PathLike) -> Optional[Path]:
    """Turn the ``ckpt`` config value into a file: ``None``, ``last`` or a path.

    Raises:
        FileNotFoundError: naming what was looked for and the fix.
    """
    if not ckpt:
        return None
    if ckpt == "last":
        last = find_last_checkpoint(run_root)
        if last is None:
            raise FileNotFoundError(
                f"ckpt=last: no {run_root}/version_*/checkpoints/last.ckpt yet; start without ckpt=, or check "
                "name= and out_dir= (they pick the run folder)"
            )
        return last
    path = Path(ckpt).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"ckpt={ckpt}: no such file (give a .ckpt path or ckpt=last)")
    return path
