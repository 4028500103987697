"""One intra-op thread for the scan tests.

The scans issue many small ops; on a shared, oversubscribed 2-core machine every OpenMP parallel
region waits for a descheduled second thread, which makes these tests ~50× slower for no benefit.
"""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def mamba_refs():
    """state-spaces/mamba's pure-PyTorch references (tests/ssm/mamba_ssm_refs.py), loaded by path
    (the tests run with --import-mode=importlib, so sibling modules are not importable by name)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("mamba_ssm_refs", Path(__file__).with_name("mamba_ssm_refs.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
