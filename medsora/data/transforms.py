"""Spatial preprocessing as in Bora: short side to ``size``, square crop, values in [-1, 1]."""
from __future__ import annotations

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF

__all__ = ["resize_short_side", "crop_square", "to_model_range", "preprocess_frames"]


def resize_short_side(video: torch.Tensor, size: int) -> torch.Tensor:
    """T×C×H×W (uint8 or float) -> T×C×H'×W' with min(H', W') = size (antialiased bilinear)."""
    return TF.resize(video, [size], antialias=True)


def crop_square(video: torch.Tensor, size: int, random: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
    """T×C×H×W -> T×C×size×size: the centre crop, or a uniformly random one (same for every frame)."""
    height, width = video.shape[-2:]
    if not random:
        return TF.center_crop(video, [size, size])
    top = int(torch.randint(0, height - size + 1, (1,), generator=generator))
    left = int(torch.randint(0, width - size + 1, (1,), generator=generator))
    return TF.crop(video, top, left, size, size)


def to_model_range(video: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return video.float().div_(127.5).sub_(1.0)


def preprocess_frames(frames: np.ndarray, size: int, random_crop: bool = False,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Decoded frames -> a model clip.

    Args:
        frames: uint8 T×H×W×3 (any aspect ratio, any size ≥ 1 px).
        size: output side.
        random_crop: random instead of centre crop.
    Returns:
        float32 3×T×size×size in [-1, 1] (channels first, frames second).
    """
    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # T×3×H×W
    video = crop_square(resize_short_side(video, size), size, random_crop, generator)
    return to_model_range(video).permute(1, 0, 2, 3).contiguous()
