"""Depthwise causal conv1d of the Mamba layers."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medsora.ssm import kernels


class CausalDepthwiseConv1d(nn.Conv1d):
    """Depthwise conv over time that only looks back, followed by SiLU (x: b×c×l -> b×c×l).

    Uses the ``causal_conv1d`` CUDA kernel when ``use_kernel`` (the layer's scan path is ``cuda``), it
    imports and ``x`` is on CUDA, otherwise ``nn.Conv1d`` on the input left-padded by ``kernel_size - 1``. Parameters are laid out as
    ``mamba_ssm``'s ``conv1d`` (weight c×1×k, bias c) so checkpoints are interchangeable.
    """

    def __init__(self, channels: int, kernel_size: int, bias: bool = True):
        super().__init__(channels, channels, kernel_size, groups=channels, padding=0, bias=bias)

    def forward(self, x: torch.Tensor, use_kernel: bool = False) -> torch.Tensor:
        if use_kernel and kernels.HAS_CAUSAL_CONV1D and x.is_cuda:  # pragma: no cover - needs CUDA
            return kernels.causal_conv1d_fn(x, self.weight.squeeze(1), self.bias, activation="silu")
        return F.silu(super().forward(F.pad(x, (self.kernel_size[0] - 1, 0))))
