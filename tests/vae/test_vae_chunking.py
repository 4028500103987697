"""Chunked (causal conv cache) encode/decode equals the full pass; tiling settings are checked.

Tolerance: temporal chunking is exact up to float rounding (max |Δ| < 1e-5 here).
Spatial tiling is approximate (per-tile normalisation statistics, truncated context);
its error on a trained VAE is checked in ``test_vae_training.py`` and reported by
``benchmarks/vae.py``.
"""
from __future__ import annotations

import copy

import pytest
import torch


@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_chunked_encode_and_decode_equal_the_full_pass(tiny_vae, video, chunk):
    """Every causal conv, the base's and the 3-D branches', carries its cache between chunks."""
    x = video(batch=2, frames=21)  # 6 latent frames: chunks of 1, 2, 3 with and without a remainder
    with torch.no_grad():
        z_full = tiny_vae.encode(x).mode()
        y_full = tiny_vae.decode(z_full)
        chunked = copy.deepcopy(tiny_vae)
        chunked.set_chunking(chunk_frames=chunk)
        z_chunk = chunked.encode(x).mode()
        y_chunk = chunked.decode(z_full)
    assert z_chunk.shape == z_full.shape and y_chunk.shape == y_full.shape
    torch.testing.assert_close(z_chunk, z_full, rtol=0, atol=1e-5)
    torch.testing.assert_close(y_chunk, y_full, rtol=0, atol=1e-5)


def test_deepcopy_rebinds_the_branch_hooks(tiny_vae, video, plain_twin):
    """EMA and other copies of the VAE must run their own branches, not the original's."""
    twin = copy.deepcopy(tiny_vae)
    x = video(frames=5)
    with torch.no_grad():
        for p in twin.branch_parameters():
            p.zero_()
        plain = plain_twin(tiny_vae)
        torch.testing.assert_close(twin(x, sample_posterior=False)[0], plain(x, sample_posterior=False)[0])
        assert (tiny_vae(x, sample_posterior=False)[0] - plain(x, sample_posterior=False)[0]).abs().max() > 1e-3


@pytest.mark.parametrize(
    ("tile", "overlap"), [(30, 0.25), (32, 0.2), (32, 0.75), (16, 0.25)],
)
def test_tiling_settings_must_align_to_latent_pixels(tiny_vae, tile, overlap):
    with pytest.raises(ValueError, match="vae.tile_size"):
        tiny_vae.set_chunking(tile_size=tile, tile_overlap=overlap)


def test_tiled_pass_keeps_shapes_and_small_videos_are_not_tiled(tiny_vae, video):
    x = video(frames=5, size=64)
    with torch.no_grad():
        z = tiny_vae.encode(x).mode()
        y = tiny_vae.decode(z)
        tiny_vae.set_chunking(chunk_frames=1, tile_size=32, tile_overlap=0.25)
        assert tiny_vae.encode(x).mode().shape == z.shape
        assert tiny_vae.decode(z).shape == y.shape
        tiny_vae.set_chunking(tile_size=64, tile_overlap=0.25)  # one tile covers the frame: the full pass
        torch.testing.assert_close(tiny_vae.decode(z), y, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="vae.chunk_frames"):
        tiny_vae.set_chunking(chunk_frames=-1)
