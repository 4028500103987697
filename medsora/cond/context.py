"""Context latents: clean latent frames the generated clip must contain (image-to-video, long video).

Image-to-video gives latent frame 0 (the causal VAE encodes video frame 0 alone into it); extending
a long video gives the last latent frames of the previous window. Both are a :class:`ContextLatents`:
clean latents at arbitrary positions plus a mask saying where they are.

The recipe is CogVideoX-I2V's, not SVD's: the context goes to the backbone as extra input channels
*aligned with the frames they belong to* (zeros elsewhere) plus the mask as one more channel, and the
noisy input holds the clean latents at those positions (Open-Sora's frame masks); the denoising loss
skips them and every sampler puts them back after every step, so they stay exactly clean. SVD instead
repeats one conditioning latent over every frame (with noise augmentation): that can only say "this
clip looks like this image", not "these frames, at these positions, are given", which long-video
extension needs, and our causal VAE makes the position-aligned latent of frame 0 exact.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import Tensor

__all__ = ["ContextLatents", "apply_context", "context_channels", "context_input"]


def context_channels(latent_channels: int) -> int:
    """Extra backbone input channels for context: the latents and one mask channel."""
    return latent_channels + 1


@dataclass
class ContextLatents:
    """Clean latents at some positions of a latent clip.

    Attributes:
        latents: B×C×T×h×w scaled latents; values where ``mask`` is False are ignored (zeroed).
        mask: B×1×T×h×w bool, True where the latent is given (usually whole latent frames).
    """

    latents: Tensor
    mask: Tensor

    def __post_init__(self):
        if self.latents.dim() != 5 or self.mask.dim() != 5 or self.mask.shape[1] != 1:
            raise ValueError(f"context latents must be B×C×T×h×w with a B×1×T×h×w mask, got "
                             f"{tuple(self.latents.shape)} and {tuple(self.mask.shape)}")
        if self.mask.shape[0] != self.latents.shape[0] or self.mask.shape[2:] != self.latents.shape[2:]:
            raise ValueError(f"context mask {tuple(self.mask.shape)} does not match latents {tuple(self.latents.shape)}")
        self.mask = self.mask.bool()
        self.latents = self.latents * self.mask

    @staticmethod
    def frames(latents: Tensor, positions: Sequence[int] | Tensor, length: Optional[int] = None) -> "ContextLatents":
        """Given latent frames at latent-frame ``positions`` of a clip of ``length`` latent frames.

        Args:
            latents: B×C×K×h×w, the K given frames in the order of ``positions``.
            positions: K distinct latent-frame indices (e.g. ``[0]`` for image-to-video, ``[T-2, T-1]``
                moved to ``[0, 1]`` of the next window for extension).
            length: T of the clip (default ``max(positions) + 1``).
        """
        positions = torch.as_tensor(positions, dtype=torch.long).flatten()
        if positions.numel() != latents.shape[2] or len(set(positions.tolist())) != positions.numel():
            raise ValueError(f"{latents.shape[2]} context frames need as many distinct positions, got "
                             f"{positions.tolist()}")
        b, c, _, h, w = latents.shape
        length = int(positions.max()) + 1 if length is None else int(length)
        if int(positions.min()) < 0 or int(positions.max()) >= length:
            raise ValueError(f"context positions {positions.tolist()} must lie in 0..{length - 1}")
        full = latents.new_zeros(b, c, length, h, w)
        full[:, :, positions.to(latents.device)] = latents
        mask = torch.zeros(b, 1, length, h, w, dtype=torch.bool, device=latents.device)
        mask[:, :, positions.to(latents.device)] = True
        return ContextLatents(full, mask)

    @staticmethod
    def empty(shape: Sequence[int], device=None, dtype=torch.float32) -> "ContextLatents":
        """No context for latents of ``shape`` (B, C, T, h, w): what a dropped context is."""
        b, c, t, h, w = shape
        return ContextLatents(torch.zeros(b, c, t, h, w, device=device, dtype=dtype),
                              torch.zeros(b, 1, t, h, w, dtype=torch.bool, device=device))

    def drop(self, rows: Tensor) -> "ContextLatents":
        """The same context with the samples where ``rows`` (B bool) is True emptied (CFG dropout)."""
        keep = ~rows.to(self.mask.device).bool().view(-1, 1, 1, 1, 1)
        return ContextLatents(self.latents, self.mask & keep)

    def to(self, device=None, dtype=None) -> "ContextLatents":
        return ContextLatents(self.latents.to(device=device, dtype=dtype), self.mask.to(device=device))


def apply_context(x: Tensor, latents: Optional[Tensor], mask: Optional[Tensor]) -> Tensor:
    """``x`` with the given context latents written in (x: B×C×T×h×w; mask broadcast over channels)."""
    if latents is None or mask is None:
        return x
    return torch.where(mask.to(x.device).bool(), latents.to(device=x.device, dtype=x.dtype), x)


def context_input(x: Tensor, latents: Optional[Tensor], mask: Optional[Tensor]) -> Tensor:
    """The backbone's input with context channels: ``[x; latents·mask; mask]`` along channels.

    ``None`` context means none given (zeros), the same input a dropped context gives.
    """
    b, c, t, h, w = x.shape
    if latents is None or mask is None:
        return torch.cat([x, x.new_zeros(b, c + 1, t, h, w)], dim=1)
    if latents.shape != x.shape or mask.shape != (b, 1, t, h, w):
        raise ValueError(f"context latents {tuple(latents.shape)} / mask {tuple(mask.shape)} must match the "
                         f"latents {tuple(x.shape)} (mask B×1×T×h×w)")
    m = mask.to(device=x.device, dtype=x.dtype)
    return torch.cat([x, latents.to(device=x.device, dtype=x.dtype) * m, m], dim=1)
