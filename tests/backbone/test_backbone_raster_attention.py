"""The reference's 1-D raster-window attention against brute-force masked attention."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medsora.backbone.raster_attention import RasterWindowAttention, raster_window_mask


def brute_force(block: RasterWindowAttention, h: torch.Tensor) -> torch.Tensor:
    b, t, height, width, d = h.shape
    seq = h.reshape(b * t, height * width, d)
    q, k, v = block.qkv(seq).view(b * t, -1, 3, block.heads, block.head_dim).permute(2, 0, 3, 1, 4)
    mask = raster_window_mask(height * width, block.window, block.reach)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return block.proj(out.transpose(1, 2).reshape(b, t, height, width, d))


@pytest.mark.parametrize("grid,window,reach", [((4, 4), 8, 1), ((3, 5), 4, 1), ((6, 6), 8, 2), ((2, 3), 8, 1),
                                               ((5, 7), 3, 0)])
def test_equals_brute_force_masked_attention(grid, window, reach):
    torch.manual_seed(0)
    block = RasterWindowAttention(16, 2, window, reach)
    h = torch.randn(2, 3, *grid, 16)
    torch.testing.assert_close(block.mix(h, None, None), brute_force(block, h), rtol=1e-5, atol=1e-5)


def test_reference_setting_sees_24_keys_and_stays_local():
    mask = raster_window_mask(64, 8, 1)  # an 8×8 token grid: MedSora's 128² clips
    assert mask[8:16].sum(dim=1).eq(24).all()  # an inner window: itself, one back, one ahead
    assert mask[0].sum() == 16 and not mask[0, 63]  # the first token never sees the last row


def test_output_at_a_token_ignores_tokens_outside_its_reach():
    torch.manual_seed(1)
    block = RasterWindowAttention(8, 2, window=4, reach=1)
    h = torch.randn(1, 1, 4, 8, 8, requires_grad=True)  # 32 tokens, 8 windows
    block.mix(h, None, None).reshape(32, 8)[0].sum().backward()  # token 0: window 0 sees windows 0, 1
    grad = h.grad.reshape(32, 8).abs().sum(dim=1)
    assert grad[:8].gt(0).all() and grad[8:].eq(0).all()
