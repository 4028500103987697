"""Depthwise causal conv1d of the Mamba layers, with a carried state and packed sequences."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from medsora.ssm import kernels


class CausalDepthwiseConv1d(nn.Conv1d):
    """Depthwise conv over time that only looks back, followed by SiLU (x: b×c×l -> b×c×l).

    Parameters are laid out as ``mamba_ssm``'s ``conv1d`` (weight c×1×k, bias c) so checkpoints are
    interchangeable. ``state`` (b×c×k, ``mamba_ssm``'s conv state: the last k inputs, oldest first)
    replaces the zero left padding, so a sequence can be processed in pieces; ``seq_idx`` (b×l)
    keeps packed sequences apart (no tap reaches into the previous sequence). Uses the
    ``causal_conv1d`` CUDA kernel when ``use_kernel`` (the layer's scan path is ``cuda``), it imports,
    ``x`` is on CUDA and no state is carried; ``nn.Conv1d`` otherwise.
    """

    def __init__(self, channels: int, kernel_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__(channels, channels, kernel_size, groups=channels, padding=0, bias=bias, device=device,
                         dtype=dtype)

    def forward(self, x: torch.Tensor, use_kernel: bool = False, state: Optional[torch.Tensor] = None,
                seq_idx: Optional[torch.Tensor] = None) -> torch.Tensor:
        k = self.kernel_size[0]
        if use_kernel and state is None and kernels.HAS_CAUSAL_CONV1D and x.is_cuda:  # pragma: no cover - CUDA
            return kernels.causal_conv1d_fn(x, self.weight.squeeze(1), self.bias, seq_idx=seq_idx, activation="silu")
        past = F.pad(x, (k - 1, 0)) if state is None else torch.cat([state[..., 1:].to(x.dtype), x], -1)
        if seq_idx is None:
            return F.silu(F.conv1d(past, self.weight, self.bias, groups=self.in_channels))
        # Tap j looks j steps back; it only counts when that step is in the same sequence.
        l = x.shape[-1]
        seq = torch.cat([seq_idx[:, :1].expand(-1, k - 1), seq_idx], 1)  # the carried state belongs to sequence 1
        w = self.weight[:, 0]  # c×k, tap k-1 is the current step
        out = past[..., k - 1:] * w[:, k - 1, None]
        for j in range(1, k):
            same = (seq[:, k - 1 - j:k - 1 - j + l] == seq_idx)[:, None]
            out = out + past[..., k - 1 - j:k - 1 - j + l] * w[:, k - 1 - j, None] * same
        if self.bias is not None:
            out = out + self.bias[:, None]
        return F.silu(out)

    def step(self, x: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """One step: x: b×c, state: b×c×k updated in place (shifted, x appended) -> silu(conv) b×c."""
        state.copy_(torch.roll(state, shifts=-1, dims=-1))
        state[:, :, -1] = x
        out = (state * self.weight[:, 0]).sum(-1)
        if self.bias is not None:
            out = out + self.bias
        return F.silu(out).to(x.dtype)


def next_conv_state(state: Optional[torch.Tensor], x: torch.Tensor, k: int) -> torch.Tensor:
    """The conv state after inputs ``x`` (b×c×l): the last k inputs, older ones from ``state`` or zeros."""
    past = F.pad(x, (k, 0)) if state is None else torch.cat([state.to(x.dtype), x], -1)
    return past[..., -k:]
