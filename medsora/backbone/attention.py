"""Attention sub-blocks: local windows (MedSora), full / divided space-time (baselines), cross.

All of them call ``F.scaled_dot_product_attention``, so PyTorch picks the flash or
memory-efficient kernel where the device has one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medsora.backbone.subblock import SubBlock

__all__ = ["LocalAttention", "FullAttention", "SpatialAttention", "TemporalAttention", "CrossAttention"]


def _head_dim(hidden: int, heads: int) -> int:
    if heads <= 0 or hidden % heads:
        raise ValueError(f"model.hidden={hidden} must be a multiple of model.heads={heads}; change one of them")
    return hidden // heads


class _SelfAttention(SubBlock):
    """Multi-head self-attention over sequences cut out of the grid by :meth:`to_seq`."""

    def __init__(self, hidden: int, heads: int):
        super().__init__(hidden)
        self.heads = heads
        self.head_dim = _head_dim(hidden, heads)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)

    @classmethod
    def from_config(cls, cfg, layer_index: int, context_dim: int) -> "_SelfAttention":
        """From the ``model:`` settings (:class:`medsora.backbone.schema.ModelConfig`)."""
        return cls(cfg.hidden, cfg.heads)

    def attend(self, seq: torch.Tensor) -> torch.Tensor:
        """seq: N×L×D -> N×L×D."""
        n, length, dim = seq.shape
        q, k, v = self.qkv(seq).view(n, length, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(n, length, dim))


class FullAttention(_SelfAttention):
    """Joint space-time attention over all ``T·H·W`` tokens (the quadratic baseline)."""

    kind = "full_attn"

    def mix(self, h, context, context_mask):
        b, t, height, width, d = h.shape
        return self.attend(h.reshape(b, t * height * width, d)).view(b, t, height, width, d)


class SpatialAttention(_SelfAttention):
    """Attention among the ``H·W`` tokens of each frame (Latte's spatial block)."""

    kind = "spatial_attn"

    def mix(self, h, context, context_mask):
        b, t, height, width, d = h.shape
        return self.attend(h.reshape(b * t, height * width, d)).view(b, t, height, width, d)


class TemporalAttention(_SelfAttention):
    """Attention along the ``T`` frames of each spatial position (Latte's temporal block)."""

    kind = "temporal_attn"

    def mix(self, h, context, context_mask):
        b, t, height, width, d = h.shape
        seq = h.permute(0, 2, 3, 1, 4).reshape(b * height * width, t, d)
        return self.attend(seq).view(b, height, width, t, d).permute(0, 3, 1, 2, 4)


class LocalAttention(_SelfAttention):
    """Self-attention inside non-overlapping ``window×window`` tiles of each frame.

    With ``window_frames = f`` a tile's keys also include the same tile in the ``f``
    frames before and after it (MedSora's reference looks one window back and one
    ahead along the raster sequence; 2-D tiles keep neighbours above and below too).
    Grids that are not a multiple of the window are padded and the padding is masked
    out of the keys; a window larger than the grid is clipped to it. Cost is linear in
    the number of tokens.
    """

    kind = "local_attn"

    def __init__(self, hidden: int, heads: int, window: int, window_frames: int = 0):
        super().__init__(hidden, heads)
        if window < 1 or window_frames < 0:
            raise ValueError(f"model.window must be >= 1 and model.window_frames >= 0, got {window}, {window_frames}")
        self.window = window
        self.window_frames = window_frames

    @classmethod
    def from_config(cls, cfg, layer_index: int, context_dim: int) -> "LocalAttention":
        """``model.local_attn: tile`` (``raster1d`` is :class:`~medsora.backbone.raster_attention.RasterWindowAttention`)."""
        return cls(cfg.hidden, cfg.heads, cfg.window, cfg.window_frames)

    def mix(self, h, context, context_mask):
        b, t, height, width, d = h.shape
        wh, ww = min(self.window, height), min(self.window, width)
        pad_h, pad_w = (-height) % wh, (-width) % ww
        qkv = self.qkv(h)
        if pad_h or pad_w:
            qkv = F.pad(qkv, (0, 0, 0, pad_w, 0, pad_h))
        nh, nw, lw = (height + pad_h) // wh, (width + pad_w) // ww, wh * ww
        qkv = qkv.view(b, t, nh, wh, nw, ww, 3, self.heads, self.head_dim)
        q, k, v = qkv.permute(6, 0, 1, 2, 4, 7, 3, 5, 8).reshape(3, b, t, nh, nw, self.heads, lw, self.head_dim)

        valid = F.pad(torch.ones(height, width, dtype=torch.bool, device=h.device), (0, pad_w, 0, pad_h))
        key_valid = valid.view(nh, wh, nw, ww).permute(0, 2, 1, 3).reshape(1, nh, nw, 1, lw)
        frames = self.window_frames
        if frames:
            k, v = self._with_neighbour_frames(k), self._with_neighbour_frames(v)
            frame = torch.arange(t, device=h.device)[:, None] + torch.arange(-frames, frames + 1, device=h.device)
            frame_valid = (frame >= 0) & (frame < t)  # T×(2f+1)
            key_valid = key_valid & frame_valid[:, None, None, :, None]
        key_valid = key_valid.expand(t, nh, nw, 2 * frames + 1, lw).reshape(t, nh, nw, -1)

        n = b * t * nh * nw
        mask = None
        if pad_h or pad_w or frames:  # decided from shapes, not values: no host sync, traceable
            mask = key_valid.expand(b, -1, -1, -1, -1).reshape(n, 1, 1, -1)
        out = F.scaled_dot_product_attention(
            q.reshape(n, self.heads, lw, self.head_dim),
            k.reshape(n, self.heads, -1, self.head_dim),
            v.reshape(n, self.heads, -1, self.head_dim),
            attn_mask=mask,
        )
        out = out.view(b, t, nh, nw, self.heads, wh, ww, self.head_dim).permute(0, 1, 2, 5, 3, 6, 4, 7)
        out = out.reshape(b, t, nh * wh, nw * ww, d)[:, :, :height, :width]
        return self.proj(out)

    def _with_neighbour_frames(self, kv: torch.Tensor) -> torch.Tensor:
        """kv: B×T×nh×nw×heads×Lw×hd -> B×T×nh×nw×heads×((2f+1)·Lw)×hd; out-of-clip frames are zeros (masked)."""
        f, t = self.window_frames, kv.shape[1]
        padded = F.pad(kv, (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, f, f))
        return torch.cat([padded[:, f + o: f + o + t] for o in range(-f, f + 1)], dim=-2)


class CrossAttention(SubBlock):
    """Every video token attends to the condition tokens ``context: B×S×context_dim``.

    ``context_mask: B×S`` (True = a real token) hides padding; a sample whose mask is
    all False gets no update from this sub-block (its output is zero before the gate).
    """

    kind = "cross_attn"

    def __init__(self, hidden: int, heads: int, context_dim: int):
        super().__init__(hidden)
        self.heads = heads
        self.head_dim = _head_dim(hidden, heads)
        self.context_dim = context_dim
        self.q = nn.Linear(hidden, hidden)
        self.kv = nn.Linear(context_dim, 2 * hidden)
        self.proj = nn.Linear(hidden, hidden)

    @classmethod
    def from_config(cls, cfg, layer_index: int, context_dim: int) -> "CrossAttention":
        """``context_dim``: the width of the condition tokens (the run's, not a ``model:`` key)."""
        return cls(cfg.hidden, cfg.heads, context_dim)

    def mix(self, h, context, context_mask):
        b, t, height, width, d = h.shape
        if context is None:
            raise ValueError(
                "model.blocks contains cross_attn but forward() got context=None; pass the text tokens "
                "(B×S×context_dim, cond.text=true) or remove cross_attn from model.blocks"
            )
        if context.dim() != 3 or context.shape[0] != b or context.shape[2] != self.context_dim:
            raise ValueError(
                f"context must be B×S×{self.context_dim} with B={b}, got {tuple(context.shape)}; "
                f"build the model with context_dim= the text encoder's width"
            )
        s = context.shape[1]
        q = self.q(h).view(b, -1, self.heads, self.head_dim).transpose(1, 2)
        k, v = self.kv(context).view(b, s, 2, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        mask, empty = None, None
        if context_mask is not None:
            if context_mask.shape != (b, s) or context_mask.dtype != torch.bool:
                raise ValueError(f"context_mask must be a bool tensor of shape {(b, s)}, got {context_mask.dtype} {tuple(context_mask.shape)}")
            empty = ~context_mask.any(dim=1)
            # A row with no key would give NaN; let it attend everywhere and zero it below.
            mask = (context_mask | empty[:, None])[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out = self.proj(out.transpose(1, 2).reshape(b, t, height, width, d))
        if empty is not None:
            out = out * (~empty).to(out.dtype)[:, None, None, None, None]
        return out
