"""Frames made small as they are decoded, and the pixel limit on what a source may hold.

A reader that stacked full-size frames before resizing would need memory proportional to the
source (an 8000×8000 video: ~3 GB for a 17-frame clip); resizing each frame as it arrives keeps
it proportional to the output. The size rule is torchvision's ``resize(video, [size])`` (the
short side becomes ``size``, the long side is truncated), so the later
:func:`medsora.data.transforms.preprocess_frames` resize is then a no-op.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF

from medsora.data.sources.formats import UnreadableVideo

__all__ = ["FrameTooLarge", "target_size", "downscale", "check_pixels"]


class FrameTooLarge(UnreadableVideo):
    """A source whose frames exceed ``data.max_frame_pixels`` (refused before decoding)."""


def target_size(height: int, width: int, short_side: int | None) -> tuple[int, int] | None:
    """``(height, width)`` with the short side at ``short_side``, or None when no downscale is due.

    Frames already at or below ``short_side`` are left alone (upscaling happens later, on the
    small clip).
    """
    if not short_side or min(height, width) <= short_side:
        return None
    if width <= height:
        return int(short_side * height / width), int(short_side)
    return int(short_side), int(short_side * width / height)


def downscale(frame: np.ndarray, short_side: int | None) -> np.ndarray:
    """One decoded frame H×W[×C] (any real dtype) with its short side brought down to ``short_side``.

    Antialiased bilinear (torchvision, as the clip preprocessing); the dtype is kept (uint8 is
    resized natively, other types in float32).
    """
    size = target_size(frame.shape[0], frame.shape[1], short_side)
    if size is None:
        return frame
    squeeze = frame.ndim == 2
    array = frame[..., None] if squeeze else frame
    tensor = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)
    if tensor.dtype != torch.uint8:
        tensor = tensor.float()
    out = TF.resize(tensor, list(size), antialias=True).permute(1, 2, 0).numpy()
    if out.dtype != frame.dtype and frame.dtype != np.uint8:
        out = out.astype(np.float32)
    return out[..., 0] if squeeze else out


def check_pixels(path: Path, height: int, width: int, max_pixels: int | None) -> None:
    """Refuse a source whose frames exceed ``max_pixels`` (``data.max_frame_pixels``), before decoding it."""
    if max_pixels and int(height) * int(width) > int(max_pixels):
        raise FrameTooLarge(
            path, f"frames of {width}×{height} = {height * width / 1e6:.1f} MP exceed data.max_frame_pixels = "
                  f"{int(max_pixels)} ({int(max_pixels) / 1e6:.1f} MP); downscale the files or raise the limit")
