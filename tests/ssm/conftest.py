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
