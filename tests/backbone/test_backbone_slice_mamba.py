"""The reference scan geometry against an explicit loop over frame×width and frame×height slices."""
from __future__ import annotations

import functools

import pytest
import torch

from medsora.backbone.slice_mamba import SliceSpiralMamba
from medsora.ssm import Mamba2Layer, scan_order


def explicit(block: SliceSpiralMamba, h: torch.Tensor) -> torch.Tensor:
    b, t, height, width, d = h.shape
    tw, th = torch.zeros_like(h), torch.zeros_like(h)

    def scan(layer, grid):  # grid: rows×cols×D, scanned in block.order and its reverse, summed
        rows, cols, _ = grid.shape
        perm = scan_order(block.order, rows, cols)
        seq = grid.reshape(rows * cols, d)[perm][None]
        out = (layer(seq) + layer(seq.flip(1)).flip(1))[0]
        back = torch.empty_like(out)
        back[perm] = out
        return back.view(rows, cols, d)

    for i in range(b):
        for y in range(height):
            tw[i, :, y, :] = scan(block.scan_tw, h[i, :, y, :])
        for x in range(width):
            th[i, :, :, x] = scan(block.scan_th, h[i, :, :, x])
    return block.fusion(tw, th)


@pytest.mark.parametrize("shape,order", [((2, 3, 4, 5), "spiral_tl"), ((1, 5, 3, 3), "spiral_ccw_br"),
                                         ((2, 2, 4, 2), "raster_tl")])
def test_equals_explicit_loop_over_slices(shape, order):
    torch.manual_seed(0)
    make = functools.partial(Mamba2Layer, 16, d_state=4, headdim=8, expand=2, scan_impl="ref")
    block = SliceSpiralMamba(16, make, order)
    h = torch.randn(*shape, 16)
    torch.testing.assert_close(block.mix(h, None, None), explicit(block, h), rtol=1e-4, atol=1e-5)


def test_mixes_frames_unlike_the_frame_geometry():
    torch.manual_seed(0)
    make = functools.partial(Mamba2Layer, 8, d_state=4, headdim=4, expand=2, scan_impl="ref")
    block = SliceSpiralMamba(8, make, "spiral_tl")
    h = torch.randn(1, 3, 2, 2, 8, requires_grad=True)
    block.mix(h, None, None)[0, 0].sum().backward()  # frame 0's output
    assert h.grad[0, 1:].abs().sum() > 0  # depends on the other frames
