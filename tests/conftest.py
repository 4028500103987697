"""Shared fixtures: tiny CPU configurations and an isolated cache folder."""
from __future__ import annotations

import os

import pytest
import torch


# The tests run tiny tensors: one intra-op thread avoids thread hand-off costs that dominate such
# ops on a small (and often shared) CPU, and keeps timings and reductions reproducible.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _deterministic_cpu():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module", autouse=True)
def _deterministic_module_fixtures():
    """Module-scoped fixtures are set up before the per-test seed above: start them from a fixed RNG state
    too, so that the models they build do not depend on which tests ran before (``--random-order``)."""
    torch.manual_seed(0)
    yield


# Variables that change what the code under test does: the suite runs as if none were set, so that a
# developer's shell (a config search path, a weights folder, a torchrun rank) cannot change its outcome.
_BEHAVIOUR_ENV = ("MEDSORA_CONFIG_PATH", "MEDSORA_CONFIG_DIR", "MEDSORA_LOG_VERSIONS", "MEDSORA_WEIGHTS",
                  "MEDSORA_VAE_CKPT", "MEDSORA_RAFT_WEIGHTS", "MEDSORA_NB_VAE_STEPS", "MEDSORA_NB_CLIPS",
                  "MEDSORA_NB_OUT", "RANK", "LOCAL_RANK", "WORLD_SIZE")


@pytest.fixture(scope="session", autouse=True)
def _plain_environment():
    with pytest.MonkeyPatch.context() as mp:
        for name in _BEHAVIOUR_ENV:
            mp.delenv(name, raising=False)
        yield


@pytest.fixture(scope="session", autouse=True)
def _medsora_cache(tmp_path_factory):
    """Keep generated data (the demo set) out of the user's home during tests."""
    if "MEDSORA_CACHE" not in os.environ:
        os.environ["MEDSORA_CACHE"] = str(tmp_path_factory.mktemp("medsora-cache"))
    yield os.environ["MEDSORA_CACHE"]


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="gpu test: no CUDA device on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def _recording(config):
    """A copy of the dataclass ``config`` that records which of its fields are read: ``(copy, reads)``."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(config)}
    reads: set[str] = set()

    class Recording(type(config)):
        def __getattribute__(self, name):
            if name in names:
                reads.add(name)
            return object.__getattribute__(self, name)

    copy = Recording(**{n: object.__getattribute__(config, n) for n in names})
    reads.clear()
    return copy, reads


@pytest.fixture
def recording_config():
    """``recording_config(cfg) -> (cfg', reads)``: ``cfg'`` is an instance of ``cfg``'s schema whose
    field reads land in the set ``reads`` (to check that a component consumes every setting)."""
    return _recording


@pytest.fixture
def untrained_vae_ckpt(tmp_path):
    """``untrained_vae_ckpt(overrides) -> tmp_path/vae.ckpt``: a VAE-stage checkpoint of the composed config
    with the module's current (untrained) weights, holding what Lightning's checkpointing adds for a VAE run."""
    def save(overrides, name: str = "vae.ckpt"):
        from medsora.config import compose
        from medsora.training.vae_module import VAEModule

        module = VAEModule(compose(overrides=list(overrides)))
        ckpt = {"state_dict": module.state_dict()}
        module.on_save_checkpoint(ckpt)
        path = tmp_path / name
        torch.save(ckpt, path)
        return path
    return save
