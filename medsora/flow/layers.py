"""Which backbone layers OFRA aligns, and the alignment loss a config asks for."""
from __future__ import annotations

from typing import Sequence

__all__ = ["align_layers", "build_align_loss", "check_layers", "per_layer_teacher"]


def align_layers(align_cfg) -> list[int]:
    """1-based layers whose hidden states are aligned: ``align.layers``, else ``[align.depth]``."""
    layers = [int(v) for v in align_cfg.layers] or [int(align_cfg.depth)]
    if len(set(layers)) != len(layers) or min(layers) < 1:
        raise ValueError(f"align.layers={layers}: 1-based layer numbers, each once")
    return sorted(layers)


def per_layer_teacher(align_cfg) -> bool:
    """Whether the teacher gives one target per aligned layer (an image encoder's matching layers)."""
    return align_cfg.target == "flow_image" and bool(align_cfg.teacher.per_layer)


def check_layers(layers: Sequence[int], depth: int) -> None:
    """Refuse layers the model does not have, naming the fix."""
    beyond = [v for v in layers if v > depth]
    if beyond:
        raise ValueError(f"align.layers={list(layers)} names layers beyond model.depth={depth} ({beyond}): "
                         f"use layers within 1..{depth}, e.g. align.layers=[{','.join(map(str, range(1, depth + 1)))}]")


def build_align_loss(align_cfg):
    """:class:`~medsora.flow.align_loss.AlignLoss` (ours) or the reference's
    :class:`~medsora.flow.align_reference.ReferenceAlignLoss`, for the backbone's and the teacher's
    layer-concatenated features."""
    if align_cfg.formulation == "reference":
        from medsora.flow.align_reference import ReferenceAlignLoss

        return ReferenceAlignLoss(align_cfg.weight, align_cfg.margin, align_cfg.projector, len(align_layers(align_cfg)),
                                  per_layer_targets=per_layer_teacher(align_cfg))
    if align_cfg.projector != "mlp":
        raise ValueError("align.projector=resize is the reference's (no learned projector): it needs "
                         "align.formulation=reference")
    from medsora.flow.align_loss import AlignLoss

    if len(align_layers(align_cfg)) > 1:
        raise ValueError("align.layers with several layers needs align.formulation=reference (ours taps one layer)")
    return AlignLoss.from_config(align_cfg)
