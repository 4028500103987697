"""Fixtures of the backbone tests: small models and a way to wake their zero-initialised layers."""
from __future__ import annotations

import pytest
import torch

from medsora.backbone import MedSoraDiT


def make_model(**overrides) -> MedSoraDiT:
    """A small MedSoraDiT on CPU (4 latent channels, width 32)."""
    settings = dict(
        blocks=("local_attn", "spatial_mamba", "temporal_mamba"), depth=2, hidden=32, heads=2,
        d_state=8, headdim=16, expand=2, window=4, scan_impl="torch",
    )
    settings.update(overrides)
    return MedSoraDiT(in_channels=4, **settings)


def wake(model: torch.nn.Module, seed: int = 1, std: float = 0.1) -> torch.nn.Module:
    """Fill every all-zero parameter (adaLN-Zero, output layer, zero biases) with noise.

    An untrained model outputs exactly zero, so behaviour tests (locality, gradients)
    need the zero-initialised layers to carry signal.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if bool((p == 0).all()):
                p.copy_(torch.randn(p.shape, generator=gen) * std)
    return model


@pytest.fixture(autouse=True)
def _one_thread():
    """These models are tiny: one intra-op thread avoids oversubscribing a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def small_model():
    return make_model


@pytest.fixture
def waker():
    return wake
