"""Frequency-compensation branches of the MedSora VAE (our code; see METHOD.md).

Both branches are residual and zero-initialised (their last convolution starts at
zero), so a VAE with freshly added branches computes exactly what the base VAE
computes; training then only adds high-frequency detail.

* :class:`FrequencyBranch2D` — per frame, at the encoder's and decoder's middle.
  Works on the explicit high-frequency content of the feature map (Haar detail
  sub-bands or an FFT high-pass), independent of the clip length (the reference
  folds frames into channels, which ties a model to one clip length).
* :class:`CausalBranch3D` — after each decoder up block: per-frame GroupNorm →
  ReLU → Dropout → causal 3×3×3 conv. Causal temporal padding (the reference pads
  symmetrically, which lets frame k see frame k+1) and a normalisation that works at
  batch size 1 (the reference uses BatchNorm3d).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.autoencoders.autoencoder_kl_cogvideox import CogVideoXCausalConv3d
from torch import nn

from medsora.vae.causal import FrameGroupNorm
from medsora.vae.spectrum import haar_dwt, haar_idwt, high_pass

FREQ_KINDS = ("haar", "fft")


class FrequencyBranch2D(nn.Module):
    """Per-frame residual on high frequencies: ``h: B×C×T×H×W -> B×C×T×H×W``.

    ``haar``: the three Haar detail sub-bands (``3C`` channels at ``H/2×W/2``) pass
    through Conv3×3 → ReLU → Conv3×3 and are transformed back with a zero LL band, so
    the residual is pure detail. ``fft``: the FFT high-passed map passes through the
    same conv stack at full size and the result is high-passed again. Odd sizes are
    edge-padded for the Haar transform and cropped back.
    """

    def __init__(self, channels: int, hidden: int, kind: str = "haar"):
        super().__init__()
        if kind not in FREQ_KINDS:
            raise ValueError(f"vae.freq_kind = {kind!r}: expected one of {FREQ_KINDS}")
        self.kind = kind
        width = 3 * channels if kind == "haar" else channels
        self.conv1 = nn.Conv2d(width, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, width, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def _stack(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(x)))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, c, t, height, width = h.shape
        x = h.transpose(1, 2).reshape(b * t, c, height, width)
        if self.kind == "haar":
            padded = F.pad(x, (0, width % 2, 0, height % 2), mode="replicate")
            ll, high = haar_dwt(padded)
            out = haar_idwt(torch.zeros_like(ll), self._stack(high))[..., :height, :width]
        else:
            out = high_pass(self._stack(high_pass(x)))
        return h + out.reshape(b, t, c, height, width).transpose(1, 2)


class CausalBranch3D(nn.Module):
    """Residual ``FrameGroupNorm → ReLU → Dropout → causal Conv3d(3×3×3)``.

    ``forward(h: B×C×T×H×W, conv_cache: B×C×2×H×W | None) -> (B×C×T×H×W, new_cache)``.
    The conv is diffusers' ``CogVideoXCausalConv3d`` (first-frame replication as left
    padding, a two-frame cache between chunks), exactly like the base VAE's convs, so
    the branch keeps the VAE causal and chunk-exact.
    """

    def __init__(self, channels: int, groups: int, dropout: float = 0.2):
        super().__init__()
        self.norm = FrameGroupNorm(groups, channels, eps=1e-6)
        self.dropout = nn.Dropout(dropout)
        self.conv = CogVideoXCausalConv3d(channels, channels, kernel_size=3, pad_mode="first")
        nn.init.zeros_(self.conv.conv.weight)
        nn.init.zeros_(self.conv.conv.bias)

    def forward(self, h: torch.Tensor, conv_cache: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        out, new_cache = self.conv(self.dropout(F.relu(self.norm(h))), conv_cache=conv_cache)
        return h + out, new_cache


class MidBlockHook:
    """Forward hook adding a :class:`FrequencyBranch2D` to a mid block's ``(hidden, cache)`` output.

    A callable object rather than a closure so that ``copy.deepcopy`` of the VAE
    rebinds the hook to the copied branch.
    """

    def __init__(self, branch: FrequencyBranch2D):
        self.branch = branch

    def __call__(self, module: nn.Module, args: tuple, output: tuple) -> tuple:
        hidden, cache = output
        return self.branch(hidden), cache


class UpBlockHook:
    """Forward hook adding a :class:`CausalBranch3D` after a decoder up block.

    The branch's own conv cache travels inside the block's cache dict under
    ``"freq_comp"``, which diffusers hands back on the next frame chunk.
    """

    key = "freq_comp"

    def __init__(self, branch: CausalBranch3D):
        self.branch = branch

    def __call__(self, module: nn.Module, args: tuple, kwargs: dict, output: tuple) -> tuple:
        hidden, cache = output
        # diffusers passes the cache by keyword, or positionally under gradient checkpointing.
        prev = kwargs["conv_cache"] if "conv_cache" in kwargs else (args[3] if len(args) > 3 else None)
        hidden, cache[self.key] = self.branch(hidden, (prev or {}).get(self.key))
        return hidden, cache
