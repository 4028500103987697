"""Attention sub-blocks against brute-force references: tiled local attention, cross-attention masks."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medsora.backbone.attention import CrossAttention, LocalAttention, SpatialAttention


def _heads(x, heads):
    """N×L×D -> N×heads×L×hd."""
    n, l, d = x.shape
    return x.view(n, l, heads, d // heads).transpose(1, 2)


def _local_reference(block: LocalAttention, h: torch.Tensor) -> torch.Tensor:
    """Loop over frames and tiles: queries of a tile attend to the same tile in frames t-f..t+f."""
    b, t, height, width, d = h.shape
    q, k, v = block.qkv(h).chunk(3, dim=-1)
    out = torch.zeros_like(h)
    win, f = block.window, block.window_frames
    for ti in range(t):
        frames = range(max(0, ti - f), min(t, ti + f + 1))
        for r in range(0, height, win):
            for c in range(0, width, win):
                tile = (slice(r, r + win), slice(c, c + win))
                qs = q[:, ti][:, tile[0], tile[1]].reshape(b, -1, d)
                ks = torch.cat([k[:, fj][:, tile[0], tile[1]].reshape(b, -1, d) for fj in frames], dim=1)
                vs = torch.cat([v[:, fj][:, tile[0], tile[1]].reshape(b, -1, d) for fj in frames], dim=1)
                o = F.scaled_dot_product_attention(_heads(qs, block.heads), _heads(ks, block.heads), _heads(vs, block.heads))
                rows, cols = len(range(height)[tile[0]]), len(range(width)[tile[1]])
                out[:, ti, tile[0], tile[1]] = o.transpose(1, 2).reshape(b, rows, cols, d)
    return block.proj(out)


@pytest.mark.parametrize("grid,window,frames", [((3, 5, 7), 4, 0), ((3, 5, 7), 4, 1), ((4, 8, 8), 4, 2), ((2, 3, 6), 2, 1)])
def test_local_attention_matches_the_tile_loop(grid, window, frames):
    block = LocalAttention(hidden=16, heads=2, window=window, window_frames=frames)
    h = torch.randn(2, *grid, 16)
    torch.testing.assert_close(block.mix(h, None, None), _local_reference(block, h), atol=1e-5, rtol=1e-5)


def test_local_attention_with_a_window_larger_than_the_frame_is_spatial_attention():
    local = LocalAttention(hidden=16, heads=4, window=64)
    spatial = SpatialAttention(hidden=16, heads=4)
    spatial.load_state_dict(local.state_dict())
    h = torch.randn(2, 3, 5, 6, 16)
    torch.testing.assert_close(local.mix(h, None, None), spatial.mix(h, None, None), atol=1e-5, rtol=1e-5)


def test_cross_attention_ignores_masked_tokens_and_empty_rows_get_no_update():
    block = CrossAttention(hidden=16, heads=2, context_dim=8)
    h = torch.randn(2, 2, 3, 3, 16)
    context = torch.randn(2, 4, 8)
    mask = torch.tensor([[True, True, False, False], [False] * 4])
    out = block.mix(h, context, mask)
    changed = context.clone()
    changed[0, 2:] = torch.randn(2, 8) * 10  # padding tokens of sample 0
    torch.testing.assert_close(block.mix(h, changed, mask), out)
    torch.testing.assert_close(out[1], torch.zeros_like(out[1]))
    # Without padding the result is plain attention over the two real tokens.
    torch.testing.assert_close(block.mix(h[:1], context[:1, :2], None), out[:1], atol=1e-5, rtol=1e-5)
