"""Mapping clinical intensities (16-bit, float, signed) to 8-bit RGB frames."""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["robust_uint8", "scale_to_uint8", "to_rgb"]


def robust_uint8(values: np.ndarray, percentiles: Sequence[float] = (0.5, 99.5)) -> np.ndarray:
    """Scale ``values`` so the (low, high) percentiles map to 0 and 255, clipping outliers.

    The percentiles are taken over the whole array (all frames together), so a
    video's brightness does not flicker from frame to frame. Non-finite values
    become 0; a constant array becomes all zeros.

    Args:
        values: any shape, any real dtype.
        percentiles: (low, high) in percent.
    Returns:
        uint8 array of the same shape.
    """
    data = np.asarray(values, dtype=np.float32)
    finite = np.isfinite(data)
    if not finite.any():
        return np.zeros(data.shape, np.uint8)
    # A strided subsample keeps percentiles cheap on big volumes without biasing them.
    sample = data[finite]
    if sample.size > 2_000_000:
        sample = sample[:: sample.size // 1_000_000]
    low, high = np.percentile(sample, [percentiles[0], percentiles[1]])
    if not high > low:
        low, high = float(sample.min()), float(sample.max())
    if not high > low:
        return np.zeros(data.shape, np.uint8)
    return scale_to_uint8(np.where(finite, data, low), low, high)


def scale_to_uint8(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Linearly map [low, high] to [0, 255] (clipped, rounded)."""
    scaled = (np.asarray(values, dtype=np.float32) - low) * (255.0 / (high - low))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def to_rgb(frames: np.ndarray) -> np.ndarray:
    """T×H×W (grey), T×H×W×1, T×H×W×3 or T×H×W×4 uint8 -> T×H×W×3 uint8 (contiguous)."""
    if frames.ndim == 3:
        frames = frames[..., None]
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    elif frames.shape[-1] == 4:
        frames = frames[..., :3]
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected T×H×W[×C] frames, got shape {frames.shape}")
    return np.ascontiguousarray(frames)
