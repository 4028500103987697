"""Build a torchvision RAFT model with weights that are already on this machine.

Nothing is ever downloaded: the torchvision weight enum is only used to know the file
name, which must already sit in the torch hub cache (``torch.hub.get_dir()/checkpoints``);
otherwise a local file given by ``align.teacher.weights`` is read. ``random`` weights are
allowed for tests and the CPU demo and are announced with a warning.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import torch
from torch import nn
from torchvision.models import optical_flow

ARCHS = {
    "raft_small": (optical_flow.raft_small, optical_flow.Raft_Small_Weights),
    "raft_large": (optical_flow.raft_large, optical_flow.Raft_Large_Weights),
}


class TeacherWeightsError(FileNotFoundError):
    """The RAFT weights asked for are not available locally; the message says how to provide them."""


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """Hex SHA-256 of a file, read in chunks (checkpoints can be gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def hub_checkpoint(arch: str, member: str = "DEFAULT") -> Path:
    """Where torchvision would cache the enum weights ``arch``/``member`` (the file may be absent)."""
    _, enum = _arch(arch)
    try:
        weights = enum[member]
    except KeyError:
        names = ", ".join(m for m in enum.__members__)
        raise ValueError(
            f"align.teacher.weights: '{member}' is not a {enum.__name__} member (choose one of {names}, "
            "'default', 'random' or a file path)"
        ) from None
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def _arch(arch: str):
    if arch not in ARCHS:
        raise ValueError(f"align.teacher.arch: '{arch}' is not one of {sorted(ARCHS)}")
    return ARCHS[arch]


def _is_enum_member(arch: str, weights: str) -> bool:
    return weights == "default" or weights in ARCHS[arch][1].__members__


def weights_identity(arch: str, weights: str, seed: int = 0) -> str:
    """A short string saying which weights a teacher uses, for cache fingerprints.

    Enum weights are named by their file (torchvision's names carry a hash prefix);
    local files by their SHA-256; random weights by their seed.
    """
    _arch(arch)
    if weights == "random":
        return f"random(seed={seed})"
    if _is_enum_member(arch, weights):
        return hub_checkpoint(arch, "DEFAULT" if weights == "default" else weights).name
    return f"sha256:{file_sha256(weights)}" if Path(weights).is_file() else f"missing:{weights}"


def _read_state_dict(path: Path) -> dict:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return state


def build_raft(arch: str, weights: str, seed: int = 0) -> nn.Module:
    """A RAFT model in eval mode with the requested weights.

    Args:
        arch: ``raft_small`` or ``raft_large``.
        weights: ``default`` / an enum member name (looked up in the torch hub cache only),
            a path to a torchvision-format state dict (``.pth``/``.pt``/``.safetensors``),
            or ``random``.
        seed: initialisation seed for ``random`` (the global RNG is left untouched).
    Raises:
        TeacherWeightsError: the weights are not on this machine; names both ways to supply them.
    """
    ctor, _ = _arch(arch)
    if weights == "random":
        msg = (
            f"align.teacher.weights=random: the {arch} optical-flow teacher is RANDOMLY INITIALISED "
            f"(seed {seed}); its flows and features are meaningless. Use this only for tests and demos."
        )
        warnings.warn(msg, UserWarning, stacklevel=3)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return ctor(weights=None).eval()
    if _is_enum_member(arch, weights):
        path = hub_checkpoint(arch, "DEFAULT" if weights == "default" else weights)
        if not path.is_file():
            raise TeacherWeightsError(
                f"RAFT weights for align.teacher.arch={arch} (align.teacher.weights={weights}) are not in the "
                f"local torch hub cache: expected {path}. Either copy that file there (it is the torchvision "
                f"release file of the same name), or set align.teacher.weights=/path/to/{path.name} "
                "(any torchvision-format RAFT state dict); align.teacher.weights=random runs with an untrained "
                "teacher (tests/demo only)."
            )
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            default = hub_checkpoint(arch)
            raise TeacherWeightsError(
                f"align.teacher.weights: RAFT weights file {path} does not exist. Either give an existing "
                f"torchvision-format {arch} state dict, or set align.teacher.weights=default and place "
                f"{default.name} in {default.parent}."
            )
    model = ctor(weights=None)
    state = _read_state_dict(path)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:  # wrong keys or shapes: another arch, or princeton-vl's own names
        first = str(err).splitlines()[1].strip() if "\n" in str(err) else str(err)
        raise TeacherWeightsError(
            f"{path}: not a torchvision {arch} state dict ({first} ...). Check align.teacher.arch matches the "
            "file; checkpoints of the original princeton-vl RAFT code must be converted to torchvision's names."
        ) from None
    return model.eval()
