"""Scan orders: permutations of the positions of an ``h×w`` (or ``T×h×w``) token grid.

A scan over an order is gather → scan → inverse gather. An order is a LongTensor ``perm`` of
row-major flat positions (``r·w + c``, or ``k·h·w + r·w + c`` with a frame index ``k``) listed in
the order the scan visits them: ``seq[i] = grid_flat[perm[i]]``.

Order names are ``<base>[_<corner>][_rev]``:

- base ``raster`` (rows, left to right), ``raster_col`` (columns, top to bottom), ``zigzag``
  (boustrophedon rows: left→right, then right→left, ...), ``zigzag_col`` (boustrophedon columns),
  ``spiral`` (clockwise, outside in), ``spiral_ccw`` (counter-clockwise, outside in);
- corner ``tl`` (default, omitted), ``tr``, ``bl``, ``br``: the corner the scan starts from.
  Raster and zigzag orders are mirrored; spirals keep their turning sense;
- ``_rev``: the flipped order (visits the same positions backwards; an inside-out spiral).

The eight orders of a family (two bases × four corners, e.g. the eight outside-in spirals) are the
grid's eight symmetries applied to one order; MedSora cycles through them with depth
(:func:`order_for_depth`).
"""
from __future__ import annotations

import functools
import operator
from typing import Optional, Tuple

import torch

BASE_ORDERS = ("raster", "raster_col", "zigzag", "zigzag_col", "spiral", "spiral_ccw")
CORNERS = ("tl", "tr", "br", "bl")

# One family per pair of transposed bases; the cycle alternates the turning sense/axis and
# moves the start around the corners so consecutive layers see the grid from different sides.
_FAMILIES = {
    "raster": ("raster", "raster_col"),
    "zigzag": ("zigzag", "zigzag_col"),
    "spiral": ("spiral", "spiral_ccw"),
}


def _with_corner(base: str, corner: str) -> str:
    return base if corner == "tl" else f"{base}_{corner}"


def _family_cycle(first: str, second: str) -> Tuple[str, ...]:
    names = []
    for corner in CORNERS:
        names += [_with_corner(first, corner), _with_corner(second, corner)]
    return tuple(names)


SPIRAL_VARIANTS: Tuple[str, ...] = _family_cycle(*_FAMILIES["spiral"])
"""The eight outside-in spirals (cw/ccw × four start corners) MedSora cycles through with depth;
their ``_rev`` twins are the inside-out spirals used by the backward half of a bidirectional scan."""

ORDER_FAMILIES = {key: _family_cycle(*pair) for key, pair in _FAMILIES.items()}


def parse_order(name: str) -> Tuple[str, str, bool]:
    """Split an order name into ``(base, corner, reversed)``; raises a ValueError listing valid names."""
    if not isinstance(name, str):
        raise TypeError(f"scan order name must be a string, got {type(name).__name__}")
    rest, rev = (name[: -len("_rev")], True) if name.endswith("_rev") else (name, False)
    corner = "tl"
    for c in CORNERS:
        if rest.endswith("_" + c):
            rest, corner = rest[: -len(c) - 1], c
            break
    if rest not in BASE_ORDERS:
        raise ValueError(
            f"unknown scan order {name!r} (config key model.scan_order): expected one of "
            f"{', '.join(BASE_ORDERS)}, optionally followed by a start corner _tr/_bl/_br and/or '_rev' "
            f"(e.g. 'spiral_ccw_br_rev')")
    return rest, corner, rev


def _spiral_positions(h: int, w: int, clockwise: bool) -> list:
    """Outside-in spiral from the top-left corner as a list of flat positions."""
    # (dr, dc) in screen coordinates (rows grow downwards): clockwise starts by going right.
    dirs = [(0, 1), (1, 0), (0, -1), (-1, 0)] if clockwise else [(1, 0), (0, 1), (-1, 0), (0, -1)]
    top, bottom, left, right = 0, h - 1, 0, w - 1
    out = []
    r, c, k = 0, 0, 0
    seen = [[False] * w for _ in range(h)]
    for _ in range(h * w):
        out.append(r * w + c)
        seen[r][c] = True
        dr, dc = dirs[k]
        nr, nc = r + dr, c + dc
        if not (top <= nr <= bottom and left <= nc <= right) or seen[nr][nc]:
            k = (k + 1) % 4
            dr, dc = dirs[k]
            nr, nc = r + dr, c + dc
        r, c = nr, nc
    return out


def _base_grid(base: str, h: int, w: int) -> torch.Tensor:
    """h×w grid whose entry (r, c) is the visit rank of position (r, c), for a top-left start."""
    rank = torch.empty(h * w, dtype=torch.long)
    if base in ("spiral", "spiral_ccw"):
        rank[torch.tensor(_spiral_positions(h, w, base == "spiral"), dtype=torch.long)] = torch.arange(h * w)
        return rank.view(h, w)
    col = base.endswith("_col")
    rows, cols = (w, h) if col else (h, w)  # lines of the scan, positions per line
    grid = torch.arange(rows * cols).view(rows, cols)
    if base.startswith("zigzag"):
        grid[1::2] = grid[1::2].flip(-1)
    return grid.t() if col else grid


def _corner_grid(base: str, corner: str, h: int, w: int) -> torch.Tensor:
    if base in ("spiral", "spiral_ccw") and corner != "tl":
        # A mirror swaps the turning sense: start from the mirrored twin so `spiral_*` stays clockwise.
        twin = "spiral_ccw" if base == "spiral" else "spiral"
        if corner == "tr":
            return _base_grid(twin, h, w).flip(1)
        if corner == "bl":
            return _base_grid(twin, h, w).flip(0)
        return _base_grid(base, h, w).flip(0).flip(1)  # a half turn keeps the sense
    grid = _base_grid(base, h, w)
    if corner in ("tr", "br"):
        grid = grid.flip(1)
    if corner in ("bl", "br"):
        grid = grid.flip(0)
    return grid


def _check_dims(h, w, t) -> Tuple[int, int, Optional[int]]:
    out = []
    for key, v in (("h", h), ("w", w), ("t", t)):
        if v is not None:
            try:
                v = operator.index(v)
            except TypeError:
                raise TypeError(f"scan_order: grid size {key}={v!r} must be an int") from None
            if v < 1:
                raise ValueError(f"scan_order: grid size {key}={v} must be >= 1")
        out.append(v)
    return tuple(out)


@functools.lru_cache(maxsize=512)
def _scan_order_cached(name: str, h: int, w: int, t: Optional[int], device: str) -> torch.Tensor:
    base, corner, rev = parse_order(name)
    rank = _corner_grid(base, corner, h, w).reshape(-1)
    perm = torch.empty_like(rank)
    perm[rank] = torch.arange(h * w)
    if t is not None:
        # Joint space-time order: frames in turn, every other frame visited backwards, so the scan
        # steps from the last position of frame k to the same position of frame k+1 (continuity).
        frames = [(perm if k % 2 == 0 else perm.flip(0)) + k * h * w for k in range(t)]
        perm = torch.cat(frames)
    if rev:
        perm = perm.flip(0)
    return perm.contiguous().to(device)


def scan_order(name: str, h: int, w: int, t: Optional[int] = None, device=None) -> torch.Tensor:
    """Permutation of the ``h·w`` (or ``t·h·w`` when ``t`` is given) grid positions for order ``name``.

    Returns a LongTensor ``perm`` (``h·w`` or ``t·h·w``) of row-major flat positions in visit order,
    cached per (name, shape, device); treat it as read-only.
    """
    h, w, t = _check_dims(h, w, t)
    return _scan_order_cached(name, h, w, t, str(torch.device(device) if device is not None else "cpu"))


@functools.lru_cache(maxsize=512)
def _inverse_cached(name: str, h: int, w: int, t: Optional[int], device: str) -> torch.Tensor:
    return inverse_order(_scan_order_cached(name, h, w, t, device))


def inverse_order(perm: torch.Tensor) -> torch.Tensor:
    """Inverse permutation: ``inv[perm[i]] = i``, so ``seq[:, inv]`` puts a scanned sequence back."""
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(perm.numel(), device=perm.device)
    return inv


def order_for_depth(base_name: str, layer_index: int) -> str:
    """Order name layer ``layer_index`` scans with when orders cycle with depth.

    Cycles the eight members of ``base_name``'s family (for spirals :data:`SPIRAL_VARIANTS`)
    starting at ``base_name`` itself; a ``_rev`` base yields ``_rev`` orders.
    """
    base, corner, rev = parse_order(base_name)
    family_key = base.split("_")[0]
    cycle = ORDER_FAMILIES[family_key]
    start = cycle.index(_with_corner(base, corner))
    name = cycle[(start + layer_index) % len(cycle)]
    return name + "_rev" if rev else name


def _check_grid(x: torch.Tensor, where: str) -> None:
    if x.dim() != 5:
        raise ValueError(f"{where}: expected a token grid B×T×H×W×D (5 dims), got shape {tuple(x.shape)}")


def grid_to_seq(x: torch.Tensor, name: str, joint: bool = False) -> torch.Tensor:
    """Gather a token grid into scan sequences.

    x: B×T×H×W×D -> (B·T)×(H·W)×D (one sequence per frame) or, with ``joint``, B×(T·H·W)×D.
    """
    _check_grid(x, "grid_to_seq")
    b, t, h, w, d = x.shape
    perm = scan_order(name, h, w, t if joint else None, device=x.device)
    seq = x.reshape(b, t * h * w, d) if joint else x.reshape(b * t, h * w, d)
    return seq.index_select(1, perm)


def seq_to_grid(seq: torch.Tensor, name: str, t: int, h: int, w: int, joint: bool = False) -> torch.Tensor:
    """Exact inverse of :func:`grid_to_seq`: (B·T)×(H·W)×D or B×(T·H·W)×D -> B×T×H×W×D."""
    inv = _inverse_cached(name, h, w, t if joint else None, str(seq.device))
    n = t * h * w if joint else h * w
    if seq.dim() != 3 or seq.shape[1] != n:
        raise ValueError(f"seq_to_grid: expected a sequence batch×{n}×D for grid t={t}, h={h}, w={w} "
                         f"(joint={joint}), got shape {tuple(seq.shape)}")
    rows = seq.shape[0] if joint else seq.shape[0] // t
    return seq.index_select(1, inv).reshape(rows, t, h, w, seq.shape[-1])
