"""MedSora's reference local attention: 1-D windows along each frame's raster sequence.

Each frame's ``H·W`` tokens, in raster order, are cut into windows of ``window`` tokens; the
queries of window ``i`` attend the keys of windows ``i-reach … i+reach`` of the same frame (the
reference: window 8, reach 1, so 24 keys). Windows past the sequence's ends and the padding of a
last partial window are masked out of the keys. Cost is linear in the number of tokens, and —
unlike the ``tile`` form (:class:`medsora.backbone.attention.LocalAttention`) — the attention stays
local at small grids: at MedSora's 128×128 clips (an 8×8 token grid) an 8×8 tile is the whole frame,
while 1-D windows of 8 with reach 1 see 3 rows.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from medsora.backbone.attention import _SelfAttention

__all__ = ["RasterWindowAttention", "raster_window_mask"]


def raster_window_mask(length: int, window: int, reach: int, device=None) -> torch.Tensor:
    """``L×L`` bool mask of the reference's attention (True = query row may attend key column).

    The brute-force definition the windowed computation must equal (used by the tests).
    """
    win = torch.arange(length, device=device) // window
    return (win[:, None] - win[None, :]).abs() <= reach


class RasterWindowAttention(_SelfAttention):
    """Self-attention in 1-D raster windows of ``window`` tokens reaching ``reach`` windows each way.

    Args:
        hidden, heads: width and attention heads.
        window: tokens per window (reference: 8).
        reach: neighbouring windows on each side whose keys are visible (reference: 1).
    """

    kind = "local_attn"

    def __init__(self, hidden: int, heads: int, window: int = 8, reach: int = 1):
        super().__init__(hidden, heads)
        if window < 1 or reach < 0:
            raise ValueError(f"model.window must be >= 1 and model.window_reach >= 0, got {window}, {reach}")
        self.window, self.reach = window, reach

    @classmethod
    def from_config(cls, cfg, layer_index: int, context_dim: int) -> "RasterWindowAttention":
        """``model.local_attn: raster1d`` with ``window`` tokens per window and ``window_reach``."""
        return cls(cfg.hidden, cfg.heads, cfg.window, cfg.window_reach)

    def mix(self, h, context, context_mask):
        b, t, height, width, d = h.shape
        length = height * width
        w, r = self.window, self.reach
        pad = (-length) % w
        nw = (length + pad) // w
        qkv = self.qkv(h.reshape(b * t, length, d))
        if pad:
            qkv = F.pad(qkv, (0, 0, 0, pad))
        qkv = qkv.view(b * t, nw, w, 3, self.heads, self.head_dim).permute(3, 0, 1, 4, 2, 5)
        q, k, v = qkv[0], qkv[1], qkv[2]  # each (B·T)×nW×heads×w×hd
        # keys of windows i-r .. i+r, stacked along the key axis: (B·T)×nW×heads×((2r+1)·w)×hd
        k, v = self._neighbours(k), self._neighbours(v)
        valid = F.pad(torch.ones(length, dtype=torch.bool, device=h.device), (0, pad)).view(nw, w)
        valid = F.pad(valid, (0, 0, r, r))  # windows beyond the ends are invalid
        key_valid = torch.stack([valid[o: o + nw] for o in range(2 * r + 1)], dim=1).reshape(nw, -1)
        mask = key_valid[None, :, None, None, :]  # 1×nW×1×1×keys
        n = b * t * nw
        out = F.scaled_dot_product_attention(
            q.reshape(n, self.heads, w, self.head_dim),
            k.reshape(n, self.heads, -1, self.head_dim),
            v.reshape(n, self.heads, -1, self.head_dim),
            attn_mask=mask.expand(b * t, -1, -1, -1, -1).reshape(n, 1, 1, -1),
        )
        out = out.view(b * t, nw, self.heads, w, self.head_dim).permute(0, 1, 3, 2, 4).reshape(b * t, nw * w, d)
        return self.proj(out[:, :length].reshape(b, t, height, width, d))

    def _neighbours(self, kv: torch.Tensor) -> torch.Tensor:
        r, nw = self.reach, kv.shape[1]
        padded = F.pad(kv, (0, 0, 0, 0, 0, 0, r, r))
        return torch.cat([padded[:, o: o + nw] for o in range(2 * r + 1)], dim=-2)

    def extra_repr(self) -> str:
        return f"window={self.window}, reach={self.reach}"
