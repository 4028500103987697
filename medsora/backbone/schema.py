"""Schema of ``model:`` — the spatio-temporal Mamba diffusion backbone.

The YAML files under ``configs/model/`` (``tiny``, ``medsora_s/b/l/xl``) set every
field; ``preset`` only names the file a config came from (for logs and the preset
table) — the values below are what is built, so ``model=medsora_b model.depth=4``
builds a 4-layer model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, List

from medsora.config.fields import bounded, choice

BLOCK_TYPES = (
    "local_attn", "spatial_mamba", "temporal_mamba",
    "full_attn", "spatial_attn", "temporal_attn", "cross_attn",
)
SCAN_ORDERS = ("spiral", "spiral_ccw", "raster", "zigzag")


@dataclass
class ModelConfig:
    preset: str = choice("tiny", "tiny", "medsora_s", "medsora_b", "medsora_l", "medsora_xl", "stdit", "custom")
    # One layer = these sub-blocks in order (each a residual x, c -> x with its own
    # adaLN-Zero shift/scale/gate); the layer is repeated `depth` times.
    blocks: List[str] = choice(["local_attn", "spatial_mamba", "temporal_mamba"], *BLOCK_TYPES)
    depth: int = bounded(2, 1, 1024)
    hidden: int = bounded(64, 4, 65536)  # a multiple of 4 (2-D sin-cos positions)
    heads: int = bounded(4, 1, 1024)  # attention heads of every *_attn sub-block (hidden must divide by heads)
    patch: int = bounded(2, 1, 64)  # spatial patch size; time is never patched
    # One adaLN-Zero MLP sub-block (kind "mlp") closes every layer when > 0 (DiT);
    # 0 reproduces MedSora, whose blocks have no MLP (9 modulation vectors per block).
    mlp_ratio: float = bounded(0.0, 0.0, 64.0)
    d_state: int = bounded(16, 1, 4096)
    headdim: int = bounded(16, 1, 4096)  # Mamba2 head dimension
    expand: int = bounded(2, 1, 64)
    mamba: str = choice("mamba2", "mamba2", "mamba1")
    scan_order: str = choice("spiral", *SCAN_ORDERS)
    cycle_orders: bool = True  # layer i scans with the i-th order of the cycle starting at scan_order
    bidirectional: bool = True  # spatial_mamba: an order and its reverse, fused by a learned gate
    temporal_bidirectional: bool = False  # temporal_mamba: False = causal along frames (MedSora)
    joint_frames: bool = False  # spatial_mamba scans all frames as one sequence (mixes frames)
    # spatial_mamba geometry: "frame" (ours: each frame's H x W grid, two direction layers, gated) or
    # "reference" (MedSora's: spirals over frame x width and frame x height slices, one layer per
    # slice family shared by both directions, directions summed, the two families gated)
    scan_geometry: str = choice("frame", "frame", "reference")
    # local_attn form: "tile" (ours: window x window tiles, keys also from window_frames frames back/ahead)
    # or "raster1d" (MedSora's reference: 1-D windows of `window` tokens along each frame's raster order,
    # attending `window_reach` windows back and ahead; window 8, reach 1 = 24 keys)
    local_attn: str = choice("tile", "tile", "raster1d")
    window: int = bounded(8, 1, 4096)  # local_attn window: tile side (tile) or tokens per window (raster1d)
    window_frames: int = bounded(0, 0, 4096)  # tile: keys also come from this many frames back and ahead
    window_reach: int = bounded(1, 0, 4096)  # raster1d: neighbouring windows visible on each side
    learn_sigma: bool = False  # output 2C channels: the noise and the interpolation of the variance
    grad_checkpointing: bool = False
    # Sub-block kinds recomputed in backward instead of keeping their activations (each keeps only its
    # input): [spatial_mamba] halves MedSora's activation memory for ~31 % more CPU time per step.
    checkpoint_blocks: List[str] = choice([], *BLOCK_TYPES, "mlp")
    # What each Mamba-2 layer keeps for backward in training. "full": only its input and in_proj output (and,
    # for the spatial scans on the CPU, the scan's output: its recomputation then computes only the chunk
    # states); conv, scan and gated norm are recomputed in backward: 1.96x full attention's activations at
    # 9x24x24, depth 4, for 1.01-1.11x off's CPU time per step (9-38 % step time on an H200 without the
    # mamba_ssm kernels, measured before the kept scan output). "off": every intermediate kept: 3.44x, no
    # recomputation. Gradients are equal either way.
    # Mamba-1 layers always keep theirs (README "Which model.mamba_recompute"; benchmarks/recompute.py).
    mamba_recompute: str = choice("full", "full", "off")
    scan_impl: str = choice("auto", "auto", "torch", "cuda", "ref")
    projector_hidden: int = bounded(2048, 1, 65536)  # width of the alignment projector MLP (REPA uses 2048)

    @staticmethod
    def checks(c) -> Iterator[tuple[str, str]]:
        """Rules between fields (bounds and choices are in the field definitions)."""
        blocks = list(c.blocks)
        if not blocks:
            yield "blocks", f"is empty: give at least one of {list(BLOCK_TYPES)}"
        if c.hidden % 4:
            yield "hidden", "must be a multiple of 4 (2-D sin-cos position embedding)"
        if any(b.endswith("_attn") for b in blocks) and c.hidden % c.heads:
            yield "heads", f"must divide model.hidden = {c.hidden} (attention blocks split it into heads)"
        if any(b.endswith("_mamba") for b in blocks) and c.mamba == "mamba2" and (c.hidden * c.expand) % c.headdim:
            yield "hidden", (f"× model.expand = {c.hidden * c.expand} must be a multiple of model.headdim = "
                             f"{c.headdim} (Mamba-2 heads)")
