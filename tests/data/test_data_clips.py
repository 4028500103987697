"""Bora preprocessing: adaptive interval, clip indices and padding, short-side resize and crops."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from medsora.data.clips import adaptive_stride, clip_indices, clip_span, clip_start, mean_abs_difference
from medsora.data.transforms import preprocess_frames


def _ramp(length: int, step: float) -> torch.Tensor:
    """A clip whose brightness rises by ``step`` per frame: mean |Δ| at stride s is exactly s·step."""
    return (torch.arange(length, dtype=torch.float32) * step)[:, None, None].expand(length, 4, 4).clone()


def test_mean_abs_difference_of_a_ramp():
    assert mean_abs_difference(_ramp(5, 0.01)) == pytest.approx(0.01)


@pytest.mark.parametrize("step,threshold,expected", [(0.004, 0.01, 3), (0.004, 0.003, 1), (0.002, 0.0105, 6)])
def test_adaptive_interval_picks_smallest_stride_above_threshold(step, threshold, expected):
    frames = _ramp(clip_span(5, 8), step)
    assert adaptive_stride(frames, num_frames=5, threshold=threshold, max_stride=8) == expected


def test_adaptive_interval_on_moving_square():
    # A 4×4 square moving one pixel per frame on a 32×32 black frame: the mean |Δ| at stride s is the
    # area swept, 2·4·s pixels of 32² (for s < 4), so K = 0.02 needs s·8/1024 > 0.02 -> s = 3.
    frames = torch.zeros(40, 32, 32)
    for t in range(40):
        frames[t, 10:14, t % 28:t % 28 + 4] = 1.0
    assert adaptive_stride(frames, num_frames=5, threshold=0.02, max_stride=6) == 3


def test_adaptive_interval_without_motion_or_room():
    still = torch.zeros(50, 4, 4)
    assert adaptive_stride(still, num_frames=5, threshold=0.01, max_stride=8) == 8  # most motion available
    assert adaptive_stride(still[:13], num_frames=5, threshold=0.01, max_stride=8) == 3  # largest that fits
    assert adaptive_stride(still[:3], num_frames=5, threshold=0.01, max_stride=8) == 1  # nothing fits


def test_clip_indices_pad_with_the_last_frame():
    assert clip_indices(length=20, num_frames=4, stride=3, start=2) == [2, 5, 8, 11]
    assert clip_indices(length=1, num_frames=4, stride=1, start=0) == [0, 0, 0, 0]
    assert clip_indices(length=2, num_frames=4, stride=1, start=0) == [0, 1, 1, 1]


def test_clip_start_random_in_training_centred_in_validation():
    gen = torch.Generator().manual_seed(0)
    starts = {clip_start(30, 10, train=True, generator=gen) for _ in range(200)}
    assert starts == set(range(21))
    assert clip_start(30, 10, train=False) == 10
    assert clip_start(5, 10, train=True, generator=gen) == 0


def test_odd_aspect_ratio_is_resized_on_the_short_side_and_centre_cropped():
    frames = np.zeros((2, 120, 200, 3), np.uint8)
    frames[:, :, 95:105] = 255  # a bright stripe in the middle column band
    frames[:, :, :10] = 128  # a border that the centre crop removes
    clip = preprocess_frames(frames, size=60)
    assert clip.shape == (3, 2, 60, 60) and clip.dtype == torch.float32
    assert clip.min() >= -1 and clip.max() <= 1
    profile = clip[0, 0].mean(0)  # mean over rows, per column
    weight = profile + 1
    centre = (weight * torch.arange(60)).sum() / weight.sum()
    assert centre.item() == pytest.approx(29.5, abs=0.3)  # the stripe stays in the centre
    assert profile[0] == pytest.approx(-1.0)  # grey border cropped away
    np.testing.assert_allclose(clip[:, 0].numpy(), clip[:, 1].numpy())


def test_random_crop_moves_with_the_seed_and_stays_inside():
    frames = np.random.default_rng(0).integers(0, 256, (1, 40, 90, 3), dtype=np.uint8)
    crops = {tuple(preprocess_frames(frames, 40, random_crop=True, generator=torch.Generator().manual_seed(s))
                   [0, 0, 0, :3].tolist()) for s in range(6)}
    assert len(crops) > 1
    full = preprocess_frames(frames, 40, random_crop=True, generator=torch.Generator().manual_seed(0))
    assert full.shape == (3, 1, 40, 40)


@pytest.mark.parametrize("count", [1, 2])
def test_tiny_inputs(count):
    frames = np.full((count, 3, 5, 3), 255, np.uint8)
    clip = preprocess_frames(frames, size=16)
    assert clip.shape == (3, count, 16, 16)
    assert torch.allclose(clip, torch.ones_like(clip))
