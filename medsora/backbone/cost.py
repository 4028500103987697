"""What a backbone costs: parameters (meta device) and forward FLOPs per clip (FlopCounterMode).

Used by the sweep tables (every row shows both), parameter matching of ablation baselines
(:mod:`medsora.sweeps.matching`) and ``benchmarks/presets.py``.
"""
from __future__ import annotations

import re
from collections import defaultdict
from typing import Sequence

import torch
from omegaconf import OmegaConf
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_parameters", "forward_flops", "saved_activation_bytes", "saved_activation_breakdown"]


def _build(model_cfg, in_channels: int, **changes):
    from medsora.backbone.model import MedSoraDiT

    cfg = OmegaConf.merge(model_cfg, changes) if changes else model_cfg
    return MedSoraDiT.from_config(cfg, in_channels=int(in_channels))


def count_parameters(model_cfg, in_channels: int, **changes) -> int:
    """Parameters of the backbone ``model_cfg`` (with ``changes`` applied), built on the meta device."""
    with torch.device("meta"):
        return sum(p.numel() for p in _build(model_cfg, in_channels, **changes).parameters())


def _layer_flops(model_cfg, in_channels: int, depth: int, latent: Sequence[int]):
    torch.manual_seed(0)
    model = _build(model_cfg, in_channels, depth=depth, grad_checkpointing=False)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.randn(1, int(in_channels), *latent), torch.zeros(1))
    kinds = {f"layers.{i}.blocks.{j}": block.kind for i, layer in enumerate(model.layers)
             for j, block in enumerate(layer.blocks)}
    by_kind: dict[str, int] = defaultdict(int)
    for module, ops in counter.get_flop_counts().items():
        match = re.search(r"layers\.\d+\.blocks\.\d+$", module)
        if match and match.group(0) in kinds:
            by_kind[kinds[match.group(0)]] += sum(ops.values())
    return counter.get_total_flops(), by_kind


def forward_flops(model_cfg, in_channels: int, latent: Sequence[int]) -> tuple[int, dict[str, int]]:
    """(forward FLOPs, FLOPs per sub-block kind) of one clip of latent ``T×h×w`` (batch 1).

    Every layer costs the same (only the scan order differs), so the count is taken on real
    tensors for 1 and 2 layers and extended linearly to ``model_cfg.depth``; the scans' chunking
    is decided from shapes, but some paths read values, which keeps FlopCounterMode off the meta
    device. A multiply-add counts as 2 FLOPs; element-wise operations are not counted.
    """
    depth = int(model_cfg.depth)
    one, kinds_one = _layer_flops(model_cfg, in_channels, 1, latent)
    if depth == 1:
        return one, dict(kinds_one)
    two, kinds_two = _layer_flops(model_cfg, in_channels, 2, latent)
    return one + (depth - 1) * (two - one), {kind: kinds_one[kind] * depth for kind in kinds_two}


def saved_activation_bytes(model: torch.nn.Module, *inputs) -> int:
    """Bytes of the distinct storages autograd saves for backward in one ``model(*inputs)``, parameters
    excluded (counted with ``torch.autograd.graph.saved_tensors_hooks``; the output is discarded): the
    sum of :func:`saved_activation_breakdown`'s rows."""
    return sum(row["bytes"] for row in saved_activation_breakdown(model, *inputs))


def saved_activation_breakdown(model: torch.nn.Module, *inputs) -> list[dict]:
    """Where :func:`saved_activation_bytes` goes: one row per distinct saved storage (parameters excluded),
    largest first, with the module that was running when it was first saved (``module``: its qualified
    name), the op that produced it (``producer``: its ``grad_fn`` name, ``-`` for a tensor without one),
    its ``shape``, ``dtype`` and ``bytes`` (the whole storage's)."""
    names = {id(m): name for name, m in model.named_modules()}
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    stack: list[str] = []
    rows: dict[int, dict] = {}

    def pre(module, args):
        stack.append(names.get(id(module), stack[-1] if stack else ""))

    def post(module, args, output):
        stack.pop()

    def pack(tensor):
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key not in params and key not in rows:
            rows[key] = dict(module=stack[-1] if stack else "", producer=type(tensor.grad_fn).__name__
                             if tensor.grad_fn is not None else "-", shape=tuple(tensor.shape),
                             dtype=str(tensor.dtype).replace("torch.", ""), bytes=storage.nbytes())
        return tensor

    handles = [torch.nn.modules.module.register_module_forward_pre_hook(pre),
               torch.nn.modules.module.register_module_forward_hook(post, always_call=True)]
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return sorted(rows.values(), key=lambda row: -row["bytes"])
