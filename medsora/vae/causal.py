"""Make diffusers' CogVideoX VAE strictly causal in time and exact under frame chunking.

diffusers' ``AutoencoderKLCogVideoX`` has causal convolutions (left padding plus a
``conv_cache`` carried between frame chunks) but two parts break causality and
chunk equivalence (measured on a random tiny model, diffusers 0.42):

1. ``nn.GroupNorm`` on a ``B×C×T×H×W`` tensor pools its statistics over all ``T``
   frames, so latent frame 0 changes when frame 16 changes (|Δ| ≈ 0.02) and
   diffusers' own frame-batched encode differs from a single full pass (|Δ| ≈ 0.24).
   :class:`FrameGroupNorm` takes the statistics per frame (same parameters, same
   state-dict keys). ``norm="clip"`` keeps diffusers' behaviour, which is what a
   pretrained CogVideoX VAE saw in training; it is neither causal nor chunk-exact.
2. ``CogVideoXUpsample3D`` guesses from the *parity* of a chunk's length whether the
   chunk holds the video's first frame (which is not doubled in time). An even number
   of latent frames (``F = 5, 13, …``) therefore decodes to the wrong length (2 latent
   frames → 8 frames instead of 5) and odd continuation chunks are not doubled.
   :class:`TimeUpsample3D` is told instead: an up-block call without a ``conv_cache``
   starts the video — the same signal ``CogVideoXCausalConv3d`` uses to replicate
   the first frame as its left padding.

With both fixes the VAE is causal at the granularity of its 4-frame groups (latent
frame ``j ≥ 1`` sees input frames ``≤ 4j``; output frames ``4j-3 … 4j`` see latent
frames ``≤ j``) and a chunked pass equals the full pass up to float rounding.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKLCogVideoX
from diffusers.models.upsampling import CogVideoXUpsample3D
from torch import nn

NORM_MODES = ("frame", "clip")
UPSAMPLE_MODES = ("nearest", "bilinear")


class FrameGroupNorm(nn.GroupNorm):
    """GroupNorm whose statistics are taken per frame: ``x: B×C×T×H×W`` (or ``N×C×H×W``).

    A drop-in replacement for ``nn.GroupNorm`` inside a video network: parameters and
    state-dict keys are identical; only the reduction set changes from
    ``C/G × T × H × W`` to ``C/G × H × W``, so no frame sees another frame's statistics.
    It also works at batch size 1 (unlike BatchNorm).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            return super().forward(x)
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)
        out = F.group_norm(frames, self.num_groups, self.weight, self.bias, self.eps)
        return out.reshape(b, t, c, h, w).transpose(1, 2)


class TimeUpsample3D(CogVideoXUpsample3D):
    """``CogVideoXUpsample3D`` whose temporal doubling knows where the video starts.

    ``x: B×C×T×H×W -> B×C'×T'×2H×2W`` with ``T' = 1 + 2(T-1)`` when the chunk starts the
    video (its first frame stays single, as in CogVideoX) and ``T' = 2T`` for a
    continuation chunk. The time axis is repeated here (nearest neighbour, exactly what
    diffusers' ``F.interpolate`` does); the spatial upsampling and the per-frame conv
    are diffusers' own forward, run with ``compress_time`` off.

    ``spatial="bilinear"`` doubles each frame by bilinear interpolation instead of
    diffusers' nearest neighbour before the same conv (``vae.upsample``): a decoder that
    has trained little then draws smooth ramps instead of 8×8 blocks. Time is untouched,
    so causality and chunk exactness hold either way.
    """

    def __init__(self, *args, spatial: str = "nearest", **kwargs):
        super().__init__(*args, **kwargs)
        if spatial not in UPSAMPLE_MODES:
            raise ValueError(f"vae.upsample = {spatial!r}: expected one of {UPSAMPLE_MODES}")
        self.time_upsample = self.compress_time
        self.compress_time = False  # diffusers' forward then does the spatial part only
        self.starts_video = True
        self.spatial = spatial

    @classmethod
    def from_module(cls, old: CogVideoXUpsample3D, spatial: str = "nearest") -> "TimeUpsample3D":
        """Wrap an existing upsampler, sharing its conv parameters."""
        new = cls(old.conv.in_channels, old.conv.out_channels, compress_time=old.compress_time, spatial=spatial)
        new.conv = old.conv
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.time_upsample:
            keep = 1 if self.starts_video else 0
            x = torch.cat([x[:, :, :keep], x[:, :, keep:].repeat_interleave(2, dim=2)], dim=2)
        if self.spatial == "nearest":
            return super().forward(x)
        b, c, t, h, w = x.shape
        frames = F.interpolate(x.transpose(1, 2).reshape(b * t, c, h, w), scale_factor=2.0, mode=self.spatial,
                               align_corners=False)
        out = self.conv(frames)
        return out.reshape(b, t, *out.shape[1:]).transpose(1, 2)


class _MarkVideoStart:
    """Up-block pre-hook: a call without ``conv_cache`` is the first chunk of a video.

    Set on every call of the block that owns the upsampler (not once per decoder call),
    so that gradient checkpointing, which re-runs a block during backward, re-runs it
    with the flag it had in the forward pass.
    """

    def __init__(self, upsamplers: list[TimeUpsample3D]):
        self.upsamplers = upsamplers

    def __call__(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        # diffusers passes the cache by keyword, or positionally under gradient checkpointing.
        cache = kwargs["conv_cache"] if "conv_cache" in kwargs else (args[3] if len(args) > 3 else None)
        for up in self.upsamplers:
            up.starts_video = cache is None


def make_causal(vae: AutoencoderKLCogVideoX, norm: str = "frame", upsample: str = "nearest") -> None:
    """Apply the fixes of this module to ``vae`` in place (idempotent).

    Args:
        vae: a diffusers CogVideoX VAE (random or ``from_pretrained``); weights are kept.
        norm: ``"frame"`` swaps every ``nn.GroupNorm`` for :class:`FrameGroupNorm`;
            ``"clip"`` keeps diffusers' clip-wide statistics.
        upsample: the decoder's spatial upsampling, ``"nearest"`` (diffusers') or ``"bilinear"``.
    """
    if norm not in NORM_MODES:
        raise ValueError(f"vae.norm = {norm!r}: expected one of {NORM_MODES}")
    for name, module in list(vae.named_modules()):
        parent_name, _, child = name.rpartition(".")
        parent = vae.get_submodule(parent_name) if parent_name else vae
        if norm == "frame" and type(module) is nn.GroupNorm:
            new = FrameGroupNorm(module.num_groups, module.num_channels, module.eps, module.affine)
            new.weight, new.bias = module.weight, module.bias
            setattr(parent, child, new)
        elif type(module) is CogVideoXUpsample3D:
            setattr(parent, child, TimeUpsample3D.from_module(module, upsample))
    for block in vae.decoder.up_blocks:
        ups = [m for m in block.modules() if isinstance(m, TimeUpsample3D) and m.time_upsample]
        if ups and not getattr(block, "_medsora_causal", False):
            block.register_forward_pre_hook(_MarkVideoStart(ups), with_kwargs=True)
            block._medsora_causal = True
