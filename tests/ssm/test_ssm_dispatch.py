"""Scan dispatch: auto/torch/cuda/ref resolution, the one-time info line, optional kernels."""
from __future__ import annotations

import logging

import pytest
import torch

from medsora.ssm import dispatch, kernels, selective_scan, selective_scan_ref, ssd, ssd_ref


def test_auto_on_cpu_is_the_pure_pytorch_path():
    assert dispatch.get_scan("ssd", "auto", torch.device("cpu")) is ssd
    assert dispatch.get_scan("selective_scan", "auto", torch.device("cpu")) is selective_scan
    assert dispatch.get_scan("ssd", "ref", torch.device("cpu")) is ssd_ref
    assert dispatch.get_scan("selective_scan", "ref", torch.device("cpu")) is selective_scan_ref


def test_cuda_without_kernels_or_gpu_is_an_actionable_error(monkeypatch):
    monkeypatch.setattr(kernels, "HAS_SSD_KERNEL", False)
    with pytest.raises(RuntimeError, match=r"pip install medsora\[kernels\].*model.scan_impl=auto"):
        dispatch.resolve_scan_impl("ssd", "cuda", torch.device("cuda"))
    monkeypatch.setattr(kernels, "HAS_SSD_KERNEL", True)
    with pytest.raises(RuntimeError, match="needs CUDA tensors"):
        dispatch.resolve_scan_impl("ssd", "cuda", torch.device("cpu"))
    with pytest.raises(ValueError, match="model.scan_impl"):
        dispatch.resolve_scan_impl("ssd", "fast", torch.device("cpu"))


def test_auto_takes_the_kernel_only_on_cuda(monkeypatch):
    monkeypatch.setattr(kernels, "HAS_SELECTIVE_SCAN_KERNEL", True)
    assert dispatch.resolve_scan_impl("selective_scan", "auto", torch.device("cuda")) == "cuda"
    assert dispatch.resolve_scan_impl("selective_scan", "auto", torch.device("cpu")) == "torch"
    monkeypatch.setattr(kernels, "HAS_SELECTIVE_SCAN_KERNEL", False)
    assert dispatch.resolve_scan_impl("selective_scan", "auto", torch.device("cuda")) == "torch"


def test_one_info_line_per_scan_kind_and_path(monkeypatch, caplog):
    monkeypatch.setattr(dispatch, "_logged", set())
    with caplog.at_level(logging.INFO, logger="medsora.ssm"):
        for _ in range(3):
            dispatch.get_scan("ssd", "auto", torch.device("cpu"))
            dispatch.get_scan("ssd", "ref", torch.device("cpu"))
    lines = [r.getMessage() for r in caplog.records if r.name == "medsora.ssm"]
    assert len(lines) == 2
    assert "pure-PyTorch" in lines[0] and "sequential reference" in lines[1]


def _rel(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm())


@pytest.mark.gpu
@pytest.mark.skipif(not kernels.HAS_SSD_KERNEL, reason="mamba_ssm kernels not installed (pip install medsora[kernels])")
def test_pure_pytorch_ssd_matches_the_cuda_kernel():
    """Both against the float64 sequential reference. The Triton kernel's fp32 dots run in TF32 (10-bit
    mantissa): measured 1.5e-3 relative error on an H100, so it gets 5e-3; ours is exact fp32."""
    torch.manual_seed(0)
    b, l, h, p, g, n = 2, 300, 4, 16, 1, 32
    dev = torch.device("cuda")
    x, dt = torch.randn(b, l, h, p, device=dev), torch.randn(b, l, h, device=dev)
    A = -torch.rand(h, device=dev) * 4
    B, C = torch.randn(b, l, g, n, device=dev), torch.randn(b, l, g, n, device=dev)
    D, bias = torch.randn(h, device=dev), torch.randn(h, device=dev)
    kw = dict(D=D, dt_bias=bias, dt_softplus=True, return_final_states=True)
    y, s = ssd(x, dt, A, B, C, 64, **kw)
    yk, sk = kernels.mamba_chunk_scan_combined(x, dt, A, B, C, 64, **kw)
    y64, s64 = ssd_ref(*(t.double().cpu() for t in (x, dt, A, B, C)),
                       **{k: (v.double().cpu() if torch.is_tensor(v) else v) for k, v in kw.items()})
    assert _rel(y.cpu(), y64) < 1e-5 and _rel(s.cpu(), s64) < 1e-5
    assert _rel(yk.cpu(), y64) < 5e-3 and _rel(sk.cpu(), s64) < 5e-3


@pytest.mark.gpu
@pytest.mark.skipif(not kernels.HAS_SELECTIVE_SCAN_KERNEL,
                    reason="mamba_ssm kernels not installed (pip install medsora[kernels])")
def test_pure_pytorch_selective_scan_matches_the_cuda_kernel():
    torch.manual_seed(0)
    b, d, l, n = 2, 32, 300, 8
    dev = torch.device("cuda")
    u, delta = torch.randn(b, d, l, device=dev), torch.randn(b, d, l, device=dev)
    A = -torch.rand(d, n, device=dev) * 4
    B, C = torch.randn(b, n, l, device=dev), torch.randn(b, n, l, device=dev)
    D, z, bias = torch.randn(d, device=dev), torch.randn(b, d, l, device=dev), torch.randn(d, device=dev)
    kw = dict(D=D, z=z, delta_bias=bias, delta_softplus=True, return_last_state=True)
    y, s = selective_scan(u, delta, A, B, C, **kw)
    yk, sk = kernels.selective_scan_fn(u, delta, A, B, C, **kw)
    torch.testing.assert_close(y, yk, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(s, sk.float(), rtol=1e-3, atol=1e-3)
