"""MedSoraDiT: the spatio-temporal Mamba diffusion transformer.

latents ``B×C×T×H×W`` -> 1×2×2 patches -> token grid ``B×T×h×w×D`` + sin-cos positions
-> ``depth`` layers, each the sub-blocks of ``model.blocks`` in order (every one a
residual ``x, c -> x`` with adaLN-Zero) -> final adaLN layer -> unpatchify -> ``B×C'×T×H×W``.

Choices where MedSora's reference and DiT differ, and why:

* Three modulation vectors per sub-block (MedSora's 9 per 3-sub-block layer), each
  sub-block with its own adaLN linear so freezing a kind freezes its modulation too.
* No MLP by default (MedSora has none); ``mlp_ratio > 0`` appends one DiT MLP
  sub-block per layer, which makes ``blocks: [full_attn]`` exactly a DiT block.
* LayerNorms without affine parameters (DiT): adaLN's shift/scale replace them.
* The attention output projections are xavier-initialised, not zero: with the
  adaLN-Zero gate at zero as well, a zero projection would get zero gradient and
  so would the gate, and the sub-block would never learn (MedSora's reference
  zero-initialises q, k and v of its local attention and hits exactly this).
* Local attention uses 2-D ``window×window`` tiles (the reference: 1-D windows of 8
  over the raster order); ``window_frames`` adds the same tile in nearby frames.
* The two scan directions of spatial Mamba have their own weights (Vision Mamba);
  the reference shares one layer. Temporal Mamba is causal by default, as in the
  reference; ``temporal_bidirectional`` adds the backward scan.
"""
from __future__ import annotations

import functools
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from medsora.backbone.embeddings import PatchEmbed, TimestepEmbedder, sincos_grid
from medsora.backbone.heads import AlignProjector, FinalLayer, unpatchify
from medsora.backbone.layers import MedSoraLayer, build_layer, is_mamba_layer
from medsora.backbone.schema import BLOCK_TYPES, ModelConfig
from medsora.config.fields import section

__all__ = ["MedSoraDiT", "MedSoraLayer"]


@functools.lru_cache(maxsize=64)
def _positions(dim: int, t: int, h: int, w: int) -> torch.Tensor:
    return sincos_grid(dim, t, h, w)


class MedSoraDiT(nn.Module):
    """Diffusion backbone over latent videos; the block pattern is configuration.

    Built from the whole ``model:`` section, as DiT builds from its ``args``: every setting
    (pattern, width, Mamba and attention options, ``learn_sigma`` ...) is a field of
    :class:`medsora.backbone.schema.ModelConfig`, read by the module that uses it (this class,
    or a sub-block's ``from_config``). A new backbone option is a schema field plus that code.

    Args:
        in_channels: latent channels C (``vae.latent_channels``).
        config: the ``model:`` settings — a ``ModelConfig``, the ``model`` section of a composed
            run config, or ``None`` for the schema defaults.
        context_dim: width of the cross-attention tokens (default ``hidden``).
        align_dim: output width of the alignment projector (None = no projector).
        align_depth, align_tap: the projector reads the grid after sub-block
            ``align_tap`` of layer ``align_depth`` (1-based).
        align_layers: several layers to tap (1-based; overrides ``align_depth``): the align output is
            the per-layer features concatenated along the last axis (MedSora's reference taps every layer).
        align_projector: ``mlp`` (a learned projector per tapped layer) or ``resize`` (none: the raw
            hidden states, for the reference's resized-teacher loss).
        **overrides: ``ModelConfig`` fields replacing those of ``config``
            (``MedSoraDiT(4, depth=3, hidden=32)``); an unknown name is a ``TypeError``.
    """

    def __init__(
        self,
        in_channels: int,
        config: Optional[ModelConfig] = None,
        *,
        context_dim: Optional[int] = None,
        align_dim: Optional[int] = None,
        align_depth: Optional[int] = None,
        align_tap: str = "spatial_mamba",
        align_layers: Optional[Sequence[int]] = None,
        align_projector: str = "mlp",
        **overrides,
    ):
        super().__init__()
        cfg = section(ModelConfig, config, overrides)
        blocks = list(cfg.blocks)
        unknown = [b for b in blocks if b not in BLOCK_TYPES]
        if not blocks or unknown:
            raise ValueError(f"model.blocks={blocks} must be a non-empty list of {list(BLOCK_TYPES)}")
        if cfg.depth < 1:
            raise ValueError(f"model.depth must be >= 1, got {cfg.depth}")
        if cfg.hidden % 4:
            raise ValueError(f"model.hidden must be a multiple of 4 (2-D sin-cos positions), got {cfg.hidden}")
        self.config = cfg
        self.in_channels = in_channels
        self.out_channels = 2 * in_channels if cfg.learn_sigma else in_channels
        self.learn_sigma = cfg.learn_sigma
        self.hidden = cfg.hidden
        self.patch = cfg.patch
        self.pattern: Tuple[str, ...] = tuple(blocks)
        self.grad_checkpointing = cfg.grad_checkpointing
        self.context_dim = context_dim or cfg.hidden

        self.patch_embed = PatchEmbed(in_channels, cfg.hidden, cfg.patch)
        self.t_embedder = TimestepEmbedder(cfg.hidden)
        self.layers = nn.ModuleList(build_layer(cfg, i, self.context_dim) for i in range(cfg.depth))
        self.final_layer = FinalLayer(cfg.hidden, cfg.patch, self.out_channels)
        unknown = sorted(set(cfg.checkpoint_blocks) - set(self.block_types()))
        if unknown:
            raise ValueError(f"model.checkpoint_blocks={list(cfg.checkpoint_blocks)}: {unknown} not in this model's "
                             f"sub-blocks {list(self.block_types())}")
        for layer in self.layers:
            for block in layer.blocks:  # recomputed in backward, keeping only its input
                block.checkpointed = block.kind in cfg.checkpoint_blocks

        self.projector = None
        self.align_layers: Tuple[int, ...] = ()
        self.align_tap_index = None
        if align_dim is not None or align_projector == "resize":
            layers = tuple(align_layers) if align_layers else (1 if align_depth is None else align_depth,)
            bad = [v for v in layers if not 1 <= v <= cfg.depth]
            if bad:
                raise ValueError(f"align.layers/align.depth {list(layers)}: layers {bad} are not within "
                                 f"1..model.depth={cfg.depth}; e.g. align.layers=[{','.join(map(str, range(1, cfg.depth + 1)))}]")
            if align_tap not in self.pattern:
                raise ValueError(f"align.tap={align_tap!r} is not in model.blocks={list(self.pattern)}; pick one of them")
            self.align_layers = layers
            self.align_tap_index = self.pattern.index(align_tap)
            if align_projector == "mlp":  # one learned projector per aligned layer (a single one keeps its old name)
                make = lambda: AlignProjector(cfg.hidden, cfg.projector_hidden, align_dim)  # noqa: E731
                self.projector = make() if len(layers) == 1 else nn.ModuleList(make() for _ in layers)
            elif align_projector != "resize":
                raise ValueError(f"align.projector={align_projector!r}: use 'mlp' or 'resize'")
        self.initialize_weights()

    @classmethod
    def from_config(
        cls,
        model_cfg,
        in_channels: int,
        align_dim: Optional[int] = None,
        align_depth: Optional[int] = None,
        align_tap: str = "spatial_mamba",
        context_dim: Optional[int] = None,
        align_hidden: Optional[int] = None,
        align_layers: Optional[Sequence[int]] = None,
        align_projector: str = "mlp",
    ) -> "MedSoraDiT":
        """Build from the ``model:`` config section (``ModelConfig``).

        ``align_hidden`` overrides ``model.projector_hidden`` (the projector's width).
        """
        overrides = {} if align_hidden is None else {"projector_hidden": align_hidden}
        return cls(in_channels, model_cfg, context_dim=context_dim, align_dim=align_dim, align_depth=align_depth,
                   align_tap=align_tap, align_layers=align_layers, align_projector=align_projector, **overrides)

    # ------------------------------------------------------------------ init
    def initialize_weights(self) -> None:
        """DiT's initialisation: xavier linears, adaLN-Zero, zero output layer.

        Mamba layers keep the initialisation of :mod:`medsora.ssm` (their dt, A and
        conv settings are part of the method, not generic linears).
        """
        mamba_modules = {id(m) for layer in self.modules() if is_mamba_layer(layer) for m in layer.modules()}
        for module in self.modules():
            if isinstance(module, nn.Linear) and id(module) not in mamba_modules:
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        w = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.patch_embed.proj.bias)
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        for layer in self.layers:
            for block in layer.blocks:
                nn.init.zeros_(block.adaLN_modulation[-1].weight)
                nn.init.zeros_(block.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].weight)
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final_layer.linear.weight)
        nn.init.zeros_(self.final_layer.linear.bias)

    # ----------------------------------------------------------- block access
    def block_types(self) -> Tuple[str, ...]:
        """Sub-block kinds of one layer, in order (``"mlp"`` last when ``mlp_ratio > 0``)."""
        return tuple(block.kind for block in self.layers[0].blocks)

    def blocks_of_kind(self, kind: str) -> List[nn.Module]:
        """Every sub-block of ``kind`` across all layers (raises naming the kinds present)."""
        if kind not in self.block_types():
            raise ValueError(f"no '{kind}' sub-blocks in this model; its kinds are {list(self.block_types())} "
                             f"(check train.frozen_blocks / model.blocks)")
        return [block for layer in self.layers for block in layer.blocks if block.kind == kind]

    def named_block_parameters(self, kind: str) -> Iterator[Tuple[str, nn.Parameter]]:
        """``(name, parameter)`` of every sub-block of ``kind``, names as in ``named_parameters()``.

        Includes each sub-block's adaLN modulation, so freezing a kind freezes it whole.
        """
        self.blocks_of_kind(kind)
        for i, layer in enumerate(self.layers):
            for j, block in enumerate(layer.blocks):
                if block.kind == kind:
                    for name, param in block.named_parameters():
                        yield f"layers.{i}.blocks.{j}.{name}", param

    # ---------------------------------------------------------------- forward
    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        cond: Optional[torch.Tensor] = None,
        context: Optional[torch.Tensor] = None,
        context_mask: Optional[torch.Tensor] = None,
        return_align: bool = False,
    ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        """Predict noise (and variance) for noisy latents.

        Args:
            x: B×C×T×H×W noisy latents (H, W multiples of ``patch``; any T >= 1).
            t: B diffusion timesteps (float or integer; a 0-d tensor is broadcast).
            cond: B×hidden pooled condition added to the timestep embedding.
            context: B×S×context_dim tokens for ``cross_attn`` sub-blocks.
            context_mask: B×S bool, True for real context tokens.
            return_align: also return the projected features for the alignment loss.
        Returns:
            B×C'×T×H×W (C' = 2C with learn_sigma), or ``(out, align)`` with
            ``align: B×T×(H/patch)×(W/patch)×align_dim``.
        """
        tokens = self.patch_embed(x)
        b, t_len, h, w, d = tokens.shape
        tokens = tokens + _positions(d, t_len, h, w).to(device=tokens.device, dtype=tokens.dtype)
        c = self.t_embedder(self._timesteps(t, b, x.device))
        if cond is not None:
            if cond.shape != (b, d):
                raise ValueError(f"cond must be B×hidden = {(b, d)}, got {tuple(cond.shape)}")
            c = c + cond.to(c.dtype)
        if context is not None and "cross_attn" not in self.pattern:
            raise ValueError("forward() got context tokens but model.blocks has no cross_attn; add cross_attn "
                             "to model.blocks or do not pass context")
        if return_align and not self.align_layers:
            raise ValueError("return_align=True needs alignment taps: build with align_dim= (align.enabled)")

        tapped = []
        for i, layer in enumerate(self.layers):
            tap = self.align_tap_index if (return_align and i + 1 in self.align_layers) else None
            if self.grad_checkpointing and torch.is_grad_enabled():
                tokens, hit = checkpoint(layer, tokens, c, context, context_mask, tap, use_reentrant=False)
            else:
                tokens, hit = layer(tokens, c, context, context_mask, tap)
            if hit is not None:
                tapped.append(hit)
        out = unpatchify(self.final_layer(tokens, c), self.patch, self.out_channels)
        if return_align:
            return out, self._project(tapped)
        return out

    def _project(self, tapped: List[torch.Tensor]) -> torch.Tensor:
        """Per-layer projections (or raw states without a projector), concatenated along features."""
        if self.projector is None:
            return torch.cat(tapped, dim=-1)
        if isinstance(self.projector, nn.ModuleList):
            return torch.cat([proj(h) for proj, h in zip(self.projector, tapped)], dim=-1)
        return self.projector(tapped[0])

    @staticmethod
    def _timesteps(t: torch.Tensor, batch: int, device) -> torch.Tensor:
        t = torch.as_tensor(t, device=device)
        if t.dim() == 0:
            t = t.expand(batch)
        if t.shape != (batch,):
            raise ValueError(f"timesteps t must have shape (B,) = ({batch},), got {tuple(t.shape)}")
        return t
