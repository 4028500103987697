"""Weight files that are never half-written, and that are loaded without unpickling code.

Plain torch, no Lightning: the inference side (:func:`medsora.vae.load_vae`, sampling, export)
reads checkpoints with :func:`load_checkpoint`; :mod:`medsora.training.checkpointing` writes them
through Lightning with :func:`atomic_torch_save`.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["atomic_torch_save", "load_checkpoint"]


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file in the target folder, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Load a MedSora checkpoint with ``weights_only=True`` (no code is unpickled).

    Raises:
        FileNotFoundError: naming the path.
        RuntimeError: the file holds objects that are not plain tensors/containers (not ours).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises UnpicklingError subclasses and RuntimeError here
        raise RuntimeError(
            f"{path}: cannot be loaded with weights_only=True ({type(err).__name__}: {str(err).splitlines()[0]}). "
            "MedSora checkpoints hold only tensors and plain values; is this file from another program?"
        ) from err
