"""Decoding a long latent clip a few latent frames at a time, so memory does not grow with its length.

The causal VAE's decoder carries its causal-convolution caches (``conv_cache``, which also holds the
frequency branches' caches and tells the time upsamplers where the video starts) from chunk to chunk,
exactly as diffusers' own frame-batched ``_decode`` does. That loop puts the remainder of
``T / chunk`` into its *first* chunk (up to ``2·chunk − 1`` frames); this one takes fixed chunks from
the start, so no decoder call sees more than ``chunk`` latent frames and the first chunk of a long
clip is computed exactly as a plain decode of a ``chunk``-frame clip. With ``vae.norm=frame`` the
result equals the full pass up to float rounding (the VAE is chunk-exact); each decoded chunk is written
into the output on ``out_device`` at once, so only the output itself grows with the length.

A VAE with spatial tiling on decodes through diffusers' tiled loop with ``chunk`` frames per batch
(that loop's first batch holds the remainder); the per-frame ``vae=sd`` VAE decodes independent slices.
"""
from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor

__all__ = ["decode_chunked", "iter_decoded"]


def iter_decoded(vae, z: Tensor, chunk: int) -> Iterator[Tensor]:
    """Decoded frames of ``z`` (B×C×T×h×w, unscaled latents), ``chunk`` latent frames per decoder call, in order."""
    if chunk < 1:
        raise ValueError(f"chunk = {chunk}: expected at least one latent frame per decoder call")
    total = z.shape[2]
    base = getattr(vae, "base", None)
    causal = base is not None and hasattr(base, "decoder") and hasattr(base, "post_quant_conv")
    if causal and not base.use_tiling:
        cache = None
        for start in range(0, total, chunk):
            part = z[:, :, start:start + chunk]
            if base.post_quant_conv is not None:
                part = base.post_quant_conv(part)
            frames, cache = base.decoder(part, conv_cache=cache)
            yield frames
    elif causal:  # spatial tiling: diffusers' tiled loop batches frames itself
        previous = base.num_latent_frames_batch_size
        base.num_latent_frames_batch_size = chunk
        try:
            yield vae.decode(z)
        finally:
            base.num_latent_frames_batch_size = previous
    else:  # a per-frame VAE (vae=sd): slices are independent
        for start in range(0, total, chunk):
            yield vae.decode(z[:, :, start:start + chunk])


@torch.no_grad()
def decode_chunked(vae, z: Tensor, chunk: int, out_device: torch.device | str = "cpu") -> Tensor:
    """``z: B×C×T×h×w`` (unscaled) -> ``B×3×F×H×W`` float32 in [-1, 1] on ``out_device``, see :func:`iter_decoded`.

    The output is allocated once (``F = 1 + s·(T−1)`` for a VAE of temporal stride ``s``) and filled chunk by
    chunk, so the clip is never held twice (a list of chunks joined at the end would).
    """
    out, at = None, 0
    for frames in iter_decoded(vae, z, chunk):
        if out is None:
            length = 1 + int(getattr(vae, "temporal_stride", 1)) * (z.shape[2] - 1)
            out = torch.empty(*frames.shape[:2], length, *frames.shape[3:], dtype=torch.float32, device=out_device)
        if at + frames.shape[2] > out.shape[2]:
            raise ValueError(f"the VAE decoded more frames than {out.shape[2]} from {z.shape[2]} latent frames")
        out[:, :, at:at + frames.shape[2]] = frames.float().clamp(-1, 1)
        at += frames.shape[2]
    if at != out.shape[2]:
        raise ValueError(f"the VAE decoded {at} frames from {z.shape[2]} latent frames, expected {out.shape[2]}")
    return out
