"""Weight files that are never half-written, and that are loaded without unpickling code.

Plain torch, no Lightning: the inference side (:func:`medsora.vae.load_vae`, sampling, export)
reads checkpoints with :func:`load_checkpoint`; :mod:`medsora.training.checkpointing` writes them
through Lightning with :func:`atomic_torch_save`. Every load first runs :func:`verify_checkpoint`:
``torch.save`` writes a zip archive whose members carry CRC-32 checksums that ``torch.load`` never
reads, so an empty, truncated or bit-flipped file is named here with its cause (instead of an
``IndexError`` in the unpickler, or damaged weights loaded silently).
"""
from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["CheckpointError", "atomic_torch_save", "verify_checkpoint", "load_checkpoint"]


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used; the message names the file and the cause."""


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


def verify_checkpoint(path: str | os.PathLike) -> Path:
    """Check that ``path`` is a complete, undamaged ``torch.save`` archive (every member's CRC-32).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: empty, truncated, not a torch zip archive, or a member fails its checksum.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path}: empty file (0 bytes): its write never finished (a killed process or a "
                              "full disk); use an earlier checkpoint")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except zipfile.BadZipFile as err:
        raise CheckpointError(f"{path}: truncated or not a PyTorch checkpoint ({size} bytes, {err}); "
                              "use an earlier checkpoint") from None
    except (OSError, EOFError, ValueError, RuntimeError) as err:  # zlib/struct errors of a damaged directory
        raise CheckpointError(f"{path}: damaged ({type(err).__name__}: {err}); use an earlier checkpoint") from None
    if bad is not None:
        raise CheckpointError(f"{path}: corrupt: '{bad}' fails its CRC-32 check (bytes changed on disk or in a "
                              "copy); use an earlier checkpoint")
    return path


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu", verify: bool = True) -> dict:
    """Load a MedSora checkpoint with ``weights_only=True`` (no code is unpickled), checked first.

    Raises:
        FileNotFoundError: naming the path.
        CheckpointError: damaged (see :func:`verify_checkpoint`), or the file holds objects that are
            not plain tensors/containers (not a MedSora checkpoint).
    """
    path = verify_checkpoint(path) if verify else Path(path).expanduser()
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises UnpicklingError subclasses and RuntimeError here
        first = (str(err).strip().splitlines() or [""])[0]
        if "weights_only" in str(err) or "Unsupported global" in str(err):
            raise CheckpointError(
                f"{path}: not a MedSora checkpoint: it holds Python objects that weights_only=True refuses "
                f"({first[:160]}); MedSora checkpoints hold only tensors and plain values"
            ) from err
        raise CheckpointError(f"{path}: cannot be read ({type(err).__name__}: {first[:200]})") from err
