"""Scan orders: permutations, neighbour continuity, corners, joint space-time orders, exact inversion."""
from __future__ import annotations

import pytest
import torch

from medsora.ssm import (BASE_ORDERS, SPIRAL_VARIANTS, grid_to_seq, inverse_order, order_for_depth, scan_order,
                         seq_to_grid)
from medsora.ssm.orders import CORNERS, ORDER_FAMILIES

GRIDS = [(1, 1), (1, 6), (6, 1), (3, 5), (5, 3), (4, 4), (2, 7)]
ALL_NAMES = [b if c == "tl" else f"{b}_{c}" for b in BASE_ORDERS for c in CORNERS]
CONTINUOUS = [n for n in ALL_NAMES if not n.startswith("raster")]


def _coords(perm, w):
    return [(int(i) // w, int(i) % w) for i in perm]


@pytest.mark.parametrize("h,w", GRIDS)
@pytest.mark.parametrize("name", ALL_NAMES + [n + "_rev" for n in ALL_NAMES])
def test_every_order_is_a_permutation(name, h, w):
    perm = scan_order(name, h, w)
    assert perm.dtype == torch.long and perm.shape == (h * w,)
    assert torch.equal(perm.sort().values, torch.arange(h * w))


@pytest.mark.parametrize("h,w", GRIDS)
@pytest.mark.parametrize("name", CONTINUOUS + [n + "_rev" for n in CONTINUOUS])
def test_spiral_and_zigzag_steps_are_4_neighbours(name, h, w):
    rc = _coords(scan_order(name, h, w), w)
    for (r0, c0), (r1, c1) in zip(rc, rc[1:]):
        assert abs(r0 - r1) + abs(c0 - c1) == 1, (name, h, w, (r0, c0), (r1, c1))


def test_definitions_on_a_3x4_grid():
    assert scan_order("raster", 3, 4).tolist() == list(range(12))
    assert scan_order("raster_col", 3, 4).tolist() == [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]
    assert scan_order("zigzag", 3, 4).tolist() == [0, 1, 2, 3, 7, 6, 5, 4, 8, 9, 10, 11]
    # clockwise from the top-left: along the top row, down the right column, ...
    assert scan_order("spiral", 3, 4).tolist() == [0, 1, 2, 3, 7, 11, 10, 9, 8, 4, 5, 6]
    # counter-clockwise from the top-left: down the left column first
    assert scan_order("spiral_ccw", 3, 4).tolist() == [0, 4, 8, 9, 10, 11, 7, 3, 2, 1, 5, 6]
    assert scan_order("spiral_rev", 3, 4).tolist() == scan_order("spiral", 3, 4).flip(0).tolist()


@pytest.mark.parametrize("base", ["spiral", "spiral_ccw", "raster", "zigzag"])
def test_corner_is_where_the_scan_starts_and_spirals_keep_their_sense(base):
    h, w = 4, 5
    starts = {"tl": (0, 0), "tr": (0, w - 1), "bl": (h - 1, 0), "br": (h - 1, w - 1)}
    for corner, rc in starts.items():
        name = base if corner == "tl" else f"{base}_{corner}"
        first, second = _coords(scan_order(name, h, w)[:2], w)
        assert first == rc
        if base.startswith("spiral"):
            # Clockwise around the border means the interior stays on the right-hand side.
            d = (second[0] - first[0], second[1] - first[1])
            inward = ((h - 1) / 2 - first[0], (w - 1) / 2 - first[1])
            cross = d[0] * inward[1] - d[1] * inward[0]  # > 0: interior on the right (rows grow downwards)
            assert (cross < 0) == (base == "spiral"), (name, d, inward)


def test_spiral_variants_are_eight_distinct_outside_in_spirals():
    perms = {tuple(scan_order(n, 4, 5).tolist()) for n in SPIRAL_VARIANTS}
    assert len(SPIRAL_VARIANTS) == 8 and len(perms) == 8
    for n in SPIRAL_VARIANTS:
        r, c = _coords(scan_order(n, 4, 5)[:1], 5)[0]
        assert r in (0, 3) and c in (0, 4)  # outside in: starts at a corner


def test_order_for_depth_cycles_the_family():
    names = [order_for_depth("spiral", i) for i in range(16)]
    assert names[:8] == list(SPIRAL_VARIANTS) and names[8:] == names[:8]
    assert order_for_depth("spiral_ccw", 0) == "spiral_ccw"
    assert order_for_depth("spiral_rev", 3) == SPIRAL_VARIANTS[3] + "_rev"
    assert set(order_for_depth("raster", i) for i in range(8)) == set(ORDER_FAMILIES["raster"])
    with pytest.raises(ValueError, match="model.scan_order"):
        order_for_depth("hilbert", 0)


@pytest.mark.parametrize("name", ["raster", "zigzag", "spiral", "spiral_ccw_br"])
def test_joint_space_time_order(name):
    t, h, w = 3, 3, 4
    perm = scan_order(name, h, w, t=t)
    assert torch.equal(perm.sort().values, torch.arange(t * h * w))
    frames = (perm // (h * w)).tolist()
    assert frames == sorted(frames)  # frame after frame
    assert torch.equal(perm[: h * w], scan_order(name, h, w))
    if not name.startswith("raster"):
        pos = [(int(i) // (h * w), (int(i) % (h * w)) // w, int(i) % w) for i in perm]
        for a, b in zip(pos, pos[1:]):
            assert sum(abs(x - y) for x, y in zip(a, b)) == 1  # 6-neighbours across frames too


def test_cached_per_name_and_shape():
    assert scan_order("spiral", 5, 7) is scan_order("spiral", 5, 7)
    assert scan_order("spiral", 5, 7) is not scan_order("spiral", 7, 5)


@pytest.mark.parametrize("joint", [False, True])
@pytest.mark.parametrize("h,w", [(1, 1), (1, 5), (5, 1), (3, 5)])
@pytest.mark.parametrize("name", ["spiral", "spiral_ccw_rev", "zigzag_bl", "raster_col"])
def test_grid_to_seq_gathers_and_seq_to_grid_inverts_exactly(name, h, w, joint):
    b, t, d = 2, 3, 4
    x = torch.randn(b, t, h, w, d)
    seq = grid_to_seq(x, name, joint=joint)
    perm = scan_order(name, h, w, t if joint else None)
    flat = x.reshape(b, t * h * w, d) if joint else x.reshape(b * t, h * w, d)
    assert torch.equal(seq, flat[:, perm])
    assert torch.equal(seq_to_grid(seq, name, t, h, w, joint=joint), x)
    assert torch.equal(inverse_order(perm)[perm], torch.arange(perm.numel()))


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown scan order 'sprial'"):
        scan_order("sprial", 3, 3)
    with pytest.raises(ValueError, match="B×T×H×W×D"):
        grid_to_seq(torch.zeros(2, 3, 4), "spiral")
    with pytest.raises(ValueError, match="expected a sequence"):
        seq_to_grid(torch.zeros(2, 10, 4), "spiral", 1, 3, 3)
    with pytest.raises(ValueError, match="h=0"):
        scan_order("spiral", 0, 3)
