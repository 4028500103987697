"""Alignment gradients reach only the projector and the backbone up to the tapped sub-block."""
from __future__ import annotations

import pytest
import torch

from medsora.backbone import MedSoraDiT
from medsora.config import compose
from medsora.flow import AlignLoss, target_dim


@pytest.mark.parametrize("depth,tap", [(1, "spatial_mamba"), (2, "local_attn")])
def test_alignment_gradients_stop_at_the_tap(depth, tap):
    cfg = compose(overrides=["data.root=demo", "model=tiny", "model.depth=3", "align.teacher.weights=random",
                             f"align.depth={depth}", f"align.tap={tap}"])
    dim = target_dim(cfg.align)
    model = MedSoraDiT.from_config(cfg.model, in_channels=4, align_dim=dim, align_depth=cfg.align.depth,
                                   align_tap=cfg.align.tap, align_hidden=32)
    with torch.no_grad():  # leave adaLN-Zero's zero init, so that every path carries gradient
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    _, projected = model(torch.randn(2, 4, 2, 8, 8), torch.tensor([3, 700]), return_align=True)
    assert projected.shape == (2, 2, 4, 4, dim)
    AlignLoss.from_config(cfg.align)(projected, torch.randn_like(projected), torch.tensor([3, 700]))["align"].backward()

    tap_index = list(cfg.model.blocks).index(tap)
    reached, untouched = [], []
    for name, p in model.named_parameters():
        got = p.grad is not None and p.grad.abs().sum() > 0
        layer = int(name.split(".")[1]) if name.startswith("layers.") else None
        block = int(name.split(".")[3]) if layer is not None else None
        before_tap = (name.startswith(("projector.", "patch_embed.", "t_embedder."))
                      or (layer is not None and (layer < depth - 1 or (layer == depth - 1 and block <= tap_index))))
        (reached if before_tap else untouched).append((name, got))
    assert all(got for _, got in reached), [n for n, g in reached if not g]
    assert any(n.startswith("projector.") for n, _ in reached)
    assert not [n for n, got in untouched if got]
    assert any(n.startswith(f"layers.{depth}.") for n, _ in untouched)
    assert any(n.startswith("final_layer.") for n, _ in untouched)
