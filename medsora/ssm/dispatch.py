"""Choose the scan implementation: ``scan_impl`` = ``auto | torch | cuda | ref`` (config ``model.scan_impl``).

``auto`` takes the ``mamba_ssm`` CUDA kernels when they import and the tensors are on CUDA, the
pure-PyTorch chunked scans otherwise. ``ref`` is the sequential recurrence (slow; for debugging).
One info line per scan kind says which path runs.
"""
from __future__ import annotations

import logging
from typing import Callable

import torch

from medsora.ssm import kernels
from medsora.ssm.reference import selective_scan_ref, ssd_ref
from medsora.ssm.chunked_selective_scan import selective_scan
from medsora.ssm.chunked_ssd import ssd

SCAN_IMPLS = ("auto", "torch", "cuda", "ref")
logger = logging.getLogger("medsora.ssm")
_logged = set()

_IMPLS = {
    "ssd": {"torch": ssd, "ref": ssd_ref, "cuda": lambda: kernels.mamba_chunk_scan_combined,
            "available": lambda: kernels.HAS_SSD_KERNEL, "kernel": "mamba_chunk_scan_combined"},
    "selective_scan": {"torch": selective_scan, "ref": selective_scan_ref, "cuda": lambda: kernels.selective_scan_fn,
                       "available": lambda: kernels.HAS_SELECTIVE_SCAN_KERNEL, "kernel": "selective_scan_fn"},
}
_DESCRIPTIONS = {"torch": "pure-PyTorch chunked scan", "ref": "sequential reference recurrence (slow)",
                 "cuda": "mamba_ssm CUDA kernel"}


def check_scan_impl(kind: str, scan_impl: str) -> None:
    """Fail early (at model construction) on an unknown ``scan_impl`` or ``cuda`` without the kernels."""
    if scan_impl not in SCAN_IMPLS:
        raise ValueError(f"unknown scan_impl {scan_impl!r} (config key model.scan_impl): expected one of {SCAN_IMPLS}")
    if scan_impl == "cuda":
        resolve_scan_impl(kind, scan_impl, torch.device("cuda"))


def resolve_scan_impl(kind: str, scan_impl: str, device: torch.device) -> str:
    """The concrete path (``torch``, ``cuda`` or ``ref``) that ``scan_impl`` means for ``kind`` on ``device``."""
    if scan_impl not in SCAN_IMPLS:
        raise ValueError(f"unknown scan_impl {scan_impl!r} (config key model.scan_impl): expected one of {SCAN_IMPLS}")
    spec = _IMPLS[kind]
    on_cuda = torch.device(device).type == "cuda"
    if scan_impl == "auto":
        return "cuda" if (on_cuda and spec["available"]()) else "torch"
    if scan_impl == "cuda":
        if not spec["available"]():
            raise RuntimeError(
                f"model.scan_impl=cuda but mamba_ssm's {spec['kernel']} does not import: install the kernels "
                f"with `pip install medsora[kernels]` (mamba-ssm, causal-conv1d) or set model.scan_impl=auto")
        if not on_cuda:
            raise RuntimeError(f"model.scan_impl=cuda needs CUDA tensors, got tensors on {device}: "
                               f"move the model to a GPU or set model.scan_impl=auto")
    return scan_impl


def get_scan(kind: str, scan_impl: str, device: torch.device) -> Callable:
    """The scan function (``kind`` = ``ssd`` or ``selective_scan``) to call for ``scan_impl`` on ``device``;
    :func:`resolve_scan_impl` names the path (``torch``, ``cuda`` or ``ref``) it belongs to."""
    path = resolve_scan_impl(kind, scan_impl, device)
    key = (kind, path)
    if key not in _logged and not torch.compiler.is_compiling():  # logging would break a compiled graph
        _logged.add(key)
        logger.info("medsora.ssm: %s runs the %s (scan_impl=%s, device=%s)",
                    kind, _DESCRIPTIONS[path], scan_impl, torch.device(device).type)
    spec = _IMPLS[kind]
    return spec["cuda"]() if path == "cuda" else spec[path]
