"""Which frames a perturbation of frame k reaches, per block pattern."""
from __future__ import annotations

import pytest
import torch

T, K = 5, 2  # frames; the perturbed frame


def _changed_frames(model, tol=1e-6):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, T, 8, 6, generator=gen)
    x2 = x.clone()
    x2[:, :, K] += torch.randn(x2[:, :, K].shape, generator=gen)
    t = torch.tensor([100])
    with torch.no_grad():
        diff = (model(x, t) - model(x2, t)).abs().amax(dim=(0, 1, 3, 4))
    assert diff[K] > 1e-3, "the perturbed frame itself must change"
    return [k for k in range(T) if diff[k] > tol]


@pytest.mark.parametrize("blocks", [("local_attn", "spatial_mamba", "spatial_attn"), ("spatial_mamba",)])
def test_spatial_blocks_never_mix_frames(small_model, waker, blocks):
    model = waker(small_model(blocks=blocks, depth=2, mlp_ratio=2.0))
    assert _changed_frames(model) == [K]


def test_causal_temporal_mamba_reaches_later_frames_only(small_model, waker):
    model = waker(small_model(blocks=("local_attn", "spatial_mamba", "temporal_mamba"), temporal_bidirectional=False))
    assert _changed_frames(model) == [K, K + 1, K + 2]


@pytest.mark.parametrize(
    "overrides",
    [
        dict(blocks=("spatial_mamba", "temporal_mamba"), temporal_bidirectional=True),
        dict(blocks=("spatial_attn", "temporal_attn")),
        dict(blocks=("full_attn",)),
    ],
)
def test_bidirectional_temporal_mixing_reaches_every_frame(small_model, waker, overrides):
    model = waker(small_model(**overrides))
    assert _changed_frames(model) == list(range(T))


def test_joint_frame_scan_carries_information_across_frames(small_model, waker):
    """Scanning all frames as one sequence, forward and backward, reaches both sides of frame k."""
    model = waker(small_model(blocks=("spatial_mamba",), depth=1, joint_frames=True))
    assert _changed_frames(model) == list(range(T))
    model = waker(small_model(blocks=("spatial_mamba",), depth=1, joint_frames=True, bidirectional=False))
    assert _changed_frames(model) == [K, K + 1, K + 2]


def test_local_attention_frame_reach_is_window_frames_per_layer(small_model, waker):
    model = waker(small_model(blocks=("local_attn",), depth=1, window_frames=1))
    assert _changed_frames(model) == [K - 1, K, K + 1]
    model = waker(small_model(blocks=("local_attn",), depth=2, window_frames=1))
    assert _changed_frames(model) == list(range(T))
