"""Width ``D`` of the alignment targets, known before any teacher weights are loaded."""
from __future__ import annotations

import torch

from medsora.flow.image_encoder import FlowImageEncoder
from medsora.flow.raft_weights import ARCHS


def target_dim(align_cfg) -> int:
    """``D`` of ``FlowTeacher.targets`` for this ``align:`` config: the backbone's projector output width.

    ``raft_motion``: RAFT's hidden-state + motion-feature widths (read from a weightless model
    built on the meta device); ``flow``: ``2·flow_cells²``; ``flow_image``: the image encoder's
    width (the local encoder is loaded once to find it).
    """
    if align_cfg.target == "flow":
        return 2 * align_cfg.flow_cells ** 2
    if align_cfg.target == "flow_image":  # per aligned layer: the encoder's width
        if not align_cfg.teacher.encoder:
            raise ValueError("align.target=flow_image needs align.teacher.encoder=PATH")
        return FlowImageEncoder(align_cfg.teacher.encoder, align_cfg.teacher.encoder_size).dim
    arch = align_cfg.teacher.arch
    if arch not in ARCHS:
        raise ValueError(f"align.teacher.arch: '{arch}' is not one of {sorted(ARCHS)}")
    with torch.device("meta"):
        update = ARCHS[arch][0](weights=None).update_block
    return update.hidden_state_size + update.motion_encoder.out_channels
