"""Non-parametric residual shortcuts around the causal VAE (``vae.shortcut: true``).

DC-AE (Chen et al., "Deep Compression Autoencoder for Efficient High-Resolution Diffusion
Models", ICLR 2025) showed that a high-compression autoencoder trains much faster when its
down- and up-sampling stages get *non-parametric* shortcuts, so the network learns a residual on
top of a fixed resampling instead of the whole mapping. Here the idea is applied once, around the
whole 8× spatial / 4× temporal VAE:

* **encoder**: the first three latent channels' posterior mean gets the clip's average colour
  per latent cell added — each 8×8 block averaged, frame 0 alone and then every group of four
  frames averaged (the causal VAE's own time grouping, so causality is kept);
* **decoder**: the output gets those three channels back as colour — bilinearly upsampled ×8 in
  space, each latent frame held over the frames it stands for (frame 0 once, then four).

So an untrained VAE already reconstructs a smooth low-pass copy of the clip with the right colours
and frame-mean brightness, and training only has to add the detail. Without it a briefly trained
tiny VAE returns flat 8×8 blocks in shifted colours and normalises the frame-mean brightness away
(the demo's contact sheet and the heart-rate benchmark, README). The shortcut has no parameters,
so state dicts and pretrained CogVideoX weights are unaffected; a pretrained base was not trained
with it, so it is meant for VAEs trained from scratch.

Both are forward hooks on diffusers' ``encoder``/``decoder`` modules (as the frequency branches
are on their blocks): every encode/decode path — full pass, frame-batched chunks, spatial tiles,
:mod:`medsora.vae.chunked_decode` — goes through them. A chunk that starts the video has
``1 + 4(T−1)`` frames for ``T`` latent frames, a continuation chunk ``4T``; each hook reads that
from the shapes, so chunked passes stay exact.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CHANNELS = 3  # RGB: the colour carried by the first three latent channels


def _starts_video(frames: int, latents: int, stride: int) -> bool:
    if frames == stride * (latents - 1) + 1:
        return True
    if frames == stride * latents:
        return False
    raise ValueError(f"VAE shortcut: {frames} frames cannot map to {latents} latent frames at temporal stride {stride}")


def pool_colour(video: torch.Tensor, latents: int, spatial: int, temporal: int) -> torch.Tensor:
    """``B×3×F×H×W`` -> ``B×3×T×H/s×W/s``: each latent cell's mean colour (frame 0 alone if the chunk starts the video)."""
    b, c, f, h, w = video.shape
    head = video[:, :, :1] if _starts_video(f, latents, temporal) else video[:, :, :0]
    rest = video[:, :, head.shape[2]:]
    groups = rest.reshape(b, c, rest.shape[2] // temporal, temporal, h, w).mean(3)
    return F.avg_pool3d(torch.cat([head, groups], 2), (1, spatial, spatial))


def unpool_colour(z: torch.Tensor, frames: int, spatial: int, temporal: int) -> torch.Tensor:
    """``B×3×T×h×w`` -> ``B×3×frames×sh×sw``: bilinear in space, each latent frame held over its frames."""
    b, c, t, h, w = z.shape
    repeats = torch.full((t,), temporal, dtype=torch.long, device=z.device)
    if _starts_video(frames, t, temporal):
        repeats[0] = 1
    held = z.repeat_interleave(repeats, dim=2)
    planes = held.transpose(1, 2).reshape(b * frames, c, h, w)
    up = F.interpolate(planes, scale_factor=spatial, mode="bilinear", align_corners=False)
    return up.reshape(b, frames, c, h * spatial, w * spatial).transpose(1, 2)


class EncoderShortcut:
    """Forward hook on ``base.encoder`` (output ``(moments, cache)``, moments = mean ‖ logvar)."""

    def __init__(self, spatial: int, temporal: int):
        self.spatial, self.temporal = spatial, temporal

    def __call__(self, module: nn.Module, args: tuple, kwargs: dict, output: tuple) -> tuple:
        video = args[0] if args else kwargs["sample"]
        moments, cache = output
        colour = pool_colour(video.to(moments.dtype), moments.shape[2], self.spatial, self.temporal)
        moments = torch.cat([moments[:, :CHANNELS] + colour, moments[:, CHANNELS:]], 1)
        return moments, cache


class DecoderShortcut:
    """Forward hook on ``base.decoder`` (output ``(frames, cache)``)."""

    def __init__(self, spatial: int, temporal: int):
        self.spatial, self.temporal = spatial, temporal

    def __call__(self, module: nn.Module, args: tuple, kwargs: dict, output: tuple) -> tuple:
        z = args[0] if args else kwargs["sample"]
        frames, cache = output
        colour = unpool_colour(z[:, :CHANNELS].to(frames.dtype), frames.shape[2], self.spatial, self.temporal)
        return frames + colour, cache


def attach_shortcuts(base, spatial: int, temporal: int) -> None:
    """Register both hooks on a diffusers CogVideoX VAE (no quant convs: the shortcut acts on the latents themselves)."""
    if base.quant_conv is not None or base.post_quant_conv is not None:
        raise ValueError("vae.shortcut needs a VAE without quant_conv/post_quant_conv (CogVideoX has none)")
    if base.config.latent_channels < CHANNELS:
        raise ValueError(f"vae.shortcut carries colour in {CHANNELS} latent channels: vae.latent_channels "
                         f"= {base.config.latent_channels} is too few")
    base.encoder.register_forward_hook(EncoderShortcut(spatial, temporal), with_kwargs=True)
    base.decoder.register_forward_hook(DecoderShortcut(spatial, temporal), with_kwargs=True)
