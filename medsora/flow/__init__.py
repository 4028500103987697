"""Optical-flow representation alignment (OFRA): frozen RAFT teacher, targets on the token grid, loss.

* :class:`FlowTeacher` — ``flows(video)`` and ``targets(video, latent_grid)``;
* :class:`AlignLoss` — per-token ``1 - pearson`` / ``1 - cos`` with named terms;
* :func:`target_dim` — the targets' width ``D`` (the backbone projector's output width);
* :mod:`medsora.flow.latent_grid` — the pixel-flow -> latent-frame mapping and token grid.
"""
from medsora.flow.align_loss import AlignLoss
from medsora.flow.latent_grid import latent_frame_groups, token_grid
from medsora.flow.raft_weights import TeacherWeightsError
from medsora.flow.target_dim import target_dim
from medsora.flow.teacher import FlowTeacher

__all__ = ["AlignLoss", "FlowTeacher", "TeacherWeightsError", "latent_frame_groups", "target_dim", "token_grid"]
