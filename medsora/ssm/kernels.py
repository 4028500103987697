"""Optional CUDA kernels (the ``[kernels]`` extra: ``mamba-ssm``, ``causal-conv1d``).

Imported in try/except: on a machine without them (CPU, a GPU generation the wheels do not cover)
every name here is None and the pure-PyTorch scans run instead. Nothing in MedSora requires them.
"""
from __future__ import annotations

try:  # pragma: no cover - depends on the optional extra
    from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined
except Exception:  # ImportError, or a broken CUDA/Triton install that fails at import time
    mamba_chunk_scan_combined = None

try:  # pragma: no cover
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
except Exception:
    selective_scan_fn = None

try:  # pragma: no cover
    from causal_conv1d import causal_conv1d_fn
except Exception:
    causal_conv1d_fn = None

HAS_SSD_KERNEL = mamba_chunk_scan_combined is not None
HAS_SELECTIVE_SCAN_KERNEL = selective_scan_fn is not None
HAS_CAUSAL_CONV1D = causal_conv1d_fn is not None
