"""Optical-flow representation alignment (OFRA): frozen RAFT teacher, targets on the token grid, loss.

* :class:`FlowTeacher` — ``flows(video)`` and ``targets(video, latent_grid)``;
* :class:`AlignLoss` — per-token ``1 - pearson`` / ``1 - cos`` with named terms;
* :func:`target_dim` — the targets' width ``D`` (the backbone projector's output width);
* :mod:`medsora.flow.latent_grid` — the pixel-flow -> latent-frame mapping and token grid.
"""
import importlib

# Imported now, not lazily: the function shares its module's name, and importing the submodule later
# would make ``medsora.flow.target_dim`` the module instead of the function.
from medsora.flow.target_dim import target_dim

_LAZY = {
    "AlignLoss": "medsora.flow.align_loss",
    "FlowTeacher": "medsora.flow.teacher",
    "TeacherWeightsError": "medsora.flow.raft_weights",
    "latent_frame_groups": "medsora.flow.latent_grid",
    "token_grid": "medsora.flow.latent_grid",
}
"""Imported on first use: the config schema reads ``medsora.flow.schema`` without loading torch."""

__all__ = [*_LAZY, "target_dim"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'medsora.flow' has no attribute {name!r}")
