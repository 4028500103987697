"""Open-Sora 1.0 STDiT weights -> our ``model=stdit`` backbone and condition encoder.

Names and shapes follow ``opensora/models/stdit/stdit.py`` and ``opensora/models/layers/blocks.py``
at Open-Sora's v1.0.0 tag (STDiT-XL/2: hidden H = 1152, depth 28, T5 width 4096, 120 tokens).
Open-Sora/PixArt checkpoints cannot be fetched here, so this is written from the module's source
and tested on random tensors of those names and shapes.

Each Open-Sora tensor is either mapped exactly, mapped with a stated approximation (where our
sub-block differs in structure, configs/model/stdit.yaml lists how), or reported as having no
equivalent — nothing is dropped silently. Our modulation is per sub-block (adaLN-Zero), STDiT's a
global ``t_block`` plus a per-block ``scale_shift_table``; since both are affine in ``SiLU(t)``, a
sub-block's linear is exactly the matching rows of ``t_block`` with the table rows folded into the bias.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Mapping

import torch
from torch import Tensor, nn

__all__ = ["StditMapping", "map_stdit_state_dict", "load_stdit_weights", "stdit_shapes"]

BACKBONE, COND = "backbone.", "cond_encoder."
_EXACT = {
    "x_embedder.proj.weight": BACKBONE + "patch_embed.proj.weight",
    "x_embedder.proj.bias": BACKBONE + "patch_embed.proj.bias",
    "t_embedder.mlp.0.weight": BACKBONE + "t_embedder.mlp.0.weight",
    "t_embedder.mlp.0.bias": BACKBONE + "t_embedder.mlp.0.bias",
    "t_embedder.mlp.2.weight": BACKBONE + "t_embedder.mlp.2.weight",
    "t_embedder.mlp.2.bias": BACKBONE + "t_embedder.mlp.2.bias",
    "y_embedder.y_proj.fc1.weight": COND + "token_proj.linear_1.weight",
    "y_embedder.y_proj.fc1.bias": COND + "token_proj.linear_1.bias",
    "y_embedder.y_proj.fc2.weight": COND + "token_proj.linear_2.weight",
    "y_embedder.y_proj.fc2.bias": COND + "token_proj.linear_2.bias",
    "final_layer.linear.weight": BACKBONE + "final_layer.linear.weight",
    "final_layer.linear.bias": BACKBONE + "final_layer.linear.bias",
}
# per block: Open-Sora module -> (our sub-block kind, our module inside it)
_BLOCK_LINEARS = {
    "attn.qkv": ("spatial_attn", "qkv"), "attn.proj": ("spatial_attn", "proj"),
    "attn_temp.qkv": ("temporal_attn", "qkv"), "attn_temp.proj": ("temporal_attn", "proj"),
    "cross_attn.q_linear": ("cross_attn", "q"), "cross_attn.kv_linear": ("cross_attn", "kv"),
    "cross_attn.proj": ("cross_attn", "proj"),
    "mlp.fc1": ("mlp", "fc1"), "mlp.fc2": ("mlp", "fc2"),
}
_NO_EQUIVALENT = {
    "pos_embed": "fixed sin-cos buffer; ours is recomputed for the grid at hand (space scale 1, not 0.5)",
    "pos_embed_temporal": "fixed sin-cos buffer; ours adds the temporal sin-cos at the input, not before "
                          "the first temporal attention",
    "final_layer.scale_shift_table": "STDiT's final shift/scale is this table + t without a linear; ours is an "
                                     "adaLN linear on SiLU(c), left at its zero initialisation",
}


@dataclass
class StditMapping:
    """The outcome of a mapping: our tensors and what did not carry over exactly.

    ``state``: our name -> tensor. ``approximate``: notes on tensors mapped into a sub-block that differs
    in structure. ``unmapped``: Open-Sora name -> why it has no equivalent. ``unknown``: Open-Sora names
    this mapping does not know (another Open-Sora version?).
    """

    state: Dict[str, Tensor] = field(default_factory=dict)
    approximate: List[str] = field(default_factory=list)
    unmapped: Dict[str, str] = field(default_factory=dict)
    unknown: List[str] = field(default_factory=list)

    def report(self) -> str:
        lines = [f"{len(self.state)} tensors mapped"]
        lines += [f"  approximate: {note}" for note in self.approximate]
        lines += [f"  no equivalent: {name} ({why})" for name, why in self.unmapped.items()]
        lines += [f"  unknown Open-Sora key: {name}" for name in self.unknown]
        return "\n".join(lines)


def _positions(model_cfg) -> Dict[str, int]:
    blocks = list(model_cfg.blocks)
    need = ("spatial_attn", "temporal_attn", "cross_attn")
    missing = [k for k in need if k not in blocks]
    if missing or float(model_cfg.mlp_ratio) <= 0:
        raise ValueError(f"STDiT weights need model.blocks with {list(need)} and model.mlp_ratio > 0 "
                         f"(model=stdit); got blocks={blocks}, mlp_ratio={model_cfg.mlp_ratio}")
    pos = {kind: blocks.index(kind) for kind in need}
    pos["mlp"] = len(blocks)
    return pos


def map_stdit_state_dict(state: Mapping[str, Tensor], model_cfg) -> StditMapping:
    """Open-Sora STDiT ``state_dict`` -> our names (``backbone.*``, ``cond_encoder.*``).

    Args:
        state: the STDiT ``state_dict`` (a leading ``module.`` is stripped).
        model_cfg: our ``model:`` section (``model=stdit``: the sub-block positions come from it).
    Raises:
        ValueError: the depth or width differ from ``model_cfg`` (naming the key and both shapes).
    """
    state = {re.sub(r"^module\.", "", k): v for k, v in state.items()}
    pos, depth, hidden = _positions(model_cfg), int(model_cfg.depth), int(model_cfg.hidden)
    out = StditMapping()
    layer = lambda i, kind: f"{BACKBONE}layers.{i}.blocks.{pos[kind]}."  # noqa: E731
    seen = set()

    def take(name: str, shape=None) -> Tensor:
        if name not in state:
            raise ValueError(f"STDiT state dict has no '{name}' (is it an Open-Sora 1.0 STDiT checkpoint?)")
        seen.add(name)
        if shape is not None and tuple(state[name].shape) != tuple(shape):
            raise ValueError(f"STDiT '{name}' has shape {tuple(state[name].shape)}, expected {tuple(shape)} for "
                             f"model.hidden={hidden}")
        return state[name]

    blocks_in_ckpt = {int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))}
    if blocks_in_ckpt and max(blocks_in_ckpt) + 1 != depth:
        raise ValueError(f"STDiT state dict has {max(blocks_in_ckpt) + 1} blocks but model.depth={depth}")

    for theirs, ours in _EXACT.items():
        out.state[ours] = take(theirs)
    if "y_embedder.y_embedding" in state:
        out.state[COND + "null_text"] = take("y_embedder.y_embedding")
        out.approximate.append("y_embedder.y_embedding -> cond_encoder.null_text needs cond.null_tokens = "
                               f"{state['y_embedder.y_embedding'].shape[0]} (Open-Sora's null caption length)")
    t_w, t_b = take("t_block.1.weight", (6 * hidden, hidden)), take("t_block.1.bias", (6 * hidden,))
    h = hidden
    for i in range(depth):
        table = take(f"blocks.{i}.scale_shift_table", (6, hidden))
        for theirs, (kind, module) in _BLOCK_LINEARS.items():
            for p in ("weight", "bias"):
                out.state[layer(i, kind) + f"{module}.{p}"] = take(f"blocks.{i}.{theirs}.{p}")
        # adaLN rows: (shift, scale, gate) of the attention branch, then of the MLP branch
        mod = lambda kind: layer(i, kind) + "adaLN_modulation.1."  # noqa: E731
        out.state[mod("spatial_attn") + "weight"] = t_w[:3 * h]
        out.state[mod("spatial_attn") + "bias"] = t_b[:3 * h] + table[:3].reshape(-1)
        out.state[mod("mlp") + "weight"] = t_w[3 * h:]
        out.state[mod("mlp") + "bias"] = t_b[3 * h:] + table[3:].reshape(-1)
        zeros_w, zeros_b = torch.zeros_like(t_w[:3 * h]), torch.zeros_like(t_b[:3 * h])
        gate_w, gate_b = zeros_w.clone(), zeros_b.clone()
        gate_w[2 * h:], gate_b[2 * h:] = t_w[2 * h:3 * h], t_b[2 * h:3 * h] + table[2]
        out.state[mod("temporal_attn") + "weight"], out.state[mod("temporal_attn") + "bias"] = gate_w, gate_b
        cross_b = zeros_b.clone()
        cross_b[2 * h:] = 1.0
        out.state[mod("cross_attn") + "weight"], out.state[mod("cross_attn") + "bias"] = zeros_w, cross_b
    out.approximate += [
        "t_block.1 + blocks.*.scale_shift_table -> per-sub-block adaLN (exact for spatial_attn and mlp while the "
        "pooled condition is zero; ours adds it to the timestep vector)",
        "blocks.*.attn_temp: STDiT's gate copied, shift/scale 0; ours still LayerNorms the temporal input",
        "blocks.*.cross_attn: gate 1, shift/scale 0; ours still LayerNorms the query side",
    ]
    for name in state:
        if name in seen:
            continue
        if name in _NO_EQUIVALENT:
            out.unmapped[name] = _NO_EQUIVALENT[name]
        else:
            out.unknown.append(name)
    return out


def load_stdit_weights(module: nn.Module, state: Mapping[str, Tensor], model_cfg) -> StditMapping:
    """Map ``state`` (Open-Sora STDiT) and load it into ``module`` (a ``DiffusionModule``: ``backbone`` +
    ``cond_encoder``); tensors it lacks keep their initialisation.

    Raises:
        ValueError: a mapped tensor's shape differs from ours (all such keys listed), or an Open-Sora key
            is unknown.
    """
    mapping = map_stdit_state_dict(state, model_cfg)
    if mapping.unknown:
        raise ValueError("STDiT state dict has keys this mapping does not know: " + ", ".join(mapping.unknown[:8]))
    own = module.state_dict()
    absent = [k for k in mapping.state if k not in own]
    wrong = [f"{k}: {tuple(v.shape)} vs ours {tuple(own[k].shape)}" for k, v in mapping.state.items()
             if k in own and own[k].shape != v.shape]
    if absent or wrong:
        raise ValueError("STDiT weights do not fit this model (check model=stdit, cond.text, "
                         "vae.latent_channels, cond.null_tokens): " + "; ".join((absent + wrong)[:8]))
    module.load_state_dict(mapping.state, strict=False)
    return mapping


def stdit_shapes(hidden: int = 1152, depth: int = 28, in_channels: int = 4, caption_channels: int = 4096,
                 tokens: int = 120, patch: int = 2, learn_sigma: bool = True, frames: int = 16,
                 spatial_tokens: int = 256) -> Dict[str, tuple]:
    """Name -> shape of an Open-Sora 1.0 ``STDiT`` state dict (defaults: STDiT-XL/2 at 16x256x256), as its
    ``__init__`` builds it (v1.0.0: ``qkv_bias=True``, no q/k norm, ``Mlp`` fc1/fc2, T2I final layer)."""
    out_ch = 2 * in_channels if learn_sigma else in_channels
    shapes = {
        "pos_embed": (1, spatial_tokens, hidden), "pos_embed_temporal": (1, frames, hidden),
        "x_embedder.proj.weight": (hidden, in_channels, 1, patch, patch), "x_embedder.proj.bias": (hidden,),
        "t_embedder.mlp.0.weight": (hidden, 256), "t_embedder.mlp.0.bias": (hidden,),
        "t_embedder.mlp.2.weight": (hidden, hidden), "t_embedder.mlp.2.bias": (hidden,),
        "t_block.1.weight": (6 * hidden, hidden), "t_block.1.bias": (6 * hidden,),
        "y_embedder.y_embedding": (tokens, caption_channels),
        "y_embedder.y_proj.fc1.weight": (hidden, caption_channels), "y_embedder.y_proj.fc1.bias": (hidden,),
        "y_embedder.y_proj.fc2.weight": (hidden, hidden), "y_embedder.y_proj.fc2.bias": (hidden,),
        "final_layer.scale_shift_table": (2, hidden),
        "final_layer.linear.weight": (patch * patch * out_ch, hidden), "final_layer.linear.bias": (patch * patch * out_ch,),
    }
    for i in range(depth):
        b = f"blocks.{i}."
        shapes[b + "scale_shift_table"] = (6, hidden)
        for name, width in (("attn.qkv", 3), ("attn.proj", 1), ("cross_attn.q_linear", 1), ("cross_attn.kv_linear", 2),
                            ("cross_attn.proj", 1), ("attn_temp.qkv", 3), ("attn_temp.proj", 1)):
            shapes[b + name + ".weight"], shapes[b + name + ".bias"] = (width * hidden, hidden), (width * hidden,)
        shapes[b + "mlp.fc1.weight"], shapes[b + "mlp.fc1.bias"] = (4 * hidden, hidden), (4 * hidden,)
        shapes[b + "mlp.fc2.weight"], shapes[b + "mlp.fc2.bias"] = (hidden, 4 * hidden), (hidden,)
    return shapes
