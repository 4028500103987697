"""Frequency tools of the compensation branches, and the high-frequency error logged in validation.

The branches' high band is the upper half of either axis' frequency range,
``max(|f_y|, |f_x|) ≥ 1/4`` cycles per sample — the complement of the band a
one-level Haar transform keeps in its LL sub-band. The logged error uses the
project's metric definition instead (radial, see :func:`high_frequency_error`).

The one-level 2-D Haar transform is written here (``pixel_unshuffle`` plus a 4×4
orthonormal mix) because none of our dependencies ships a differentiable DWT;
``pytorch_wavelets`` would be a new dependency for eight lines of code.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

HIGH_BAND_START = 0.25  # cycles per sample; Nyquist is 0.5

# Rows: LL, LH, HL, HH as combinations of the 2×2 block (a b / c d); orthonormal and
# symmetric, so it is its own inverse.
_HAAR = 0.5 * torch.tensor(
    [[1.0, 1.0, 1.0, 1.0], [1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0], [1.0, -1.0, -1.0, 1.0]]
)


def haar_dwt(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One-level orthonormal 2-D Haar transform.

    Args:
        x: ``N×C×H×W`` with even ``H`` and ``W``.
    Returns:
        ``(ll, high)``: ``ll: N×C×H/2×W/2`` and ``high: N×3C×H/2×W/2`` (LH, HL, HH per channel).
    """
    n, c, h, w = x.shape
    blocks = F.pixel_unshuffle(x, 2).reshape(n, c, 4, h // 2, w // 2)
    bands = torch.einsum("kj,ncjhw->nckhw", _HAAR.to(x), blocks)
    return bands[:, :, 0], bands[:, :, 1:].reshape(n, 3 * c, h // 2, w // 2)


def haar_idwt(ll: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`haar_dwt`: ``ll: N×C×h×w``, ``high: N×3C×h×w`` -> ``N×C×2h×2w``."""
    n, c, h, w = ll.shape
    bands = torch.cat([ll[:, :, None], high.reshape(n, c, 3, h, w)], dim=2)
    blocks = torch.einsum("jk,nckhw->ncjhw", _HAAR.to(ll), bands)
    return F.pixel_shuffle(blocks.reshape(n, 4 * c, h, w), 2)


def fft_ready(x: torch.Tensor) -> torch.Tensor:
    """``x`` in a precision the FFT handles well: half precision goes to float32, the rest is kept."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def high_band_mask(h: int, w: int, device=None) -> torch.Tensor:
    """Boolean ``h×(w//2+1)`` mask of the branches' high band on an ``rfft2`` grid."""
    fy = torch.fft.fftfreq(h, device=device).abs()[:, None]
    fx = torch.fft.rfftfreq(w, device=device)[None, :]
    return torch.maximum(fy.expand(h, fx.shape[1]), fx.expand(h, fx.shape[1])) >= HIGH_BAND_START


def high_pass(x: torch.Tensor) -> torch.Tensor:
    """Keep only the high band of each 2-D slice: ``x: …×H×W -> …×H×W`` (FFT mask; half precision is
    computed in float32)."""
    h, w = x.shape[-2:]
    spec = torch.fft.rfft2(fft_ready(x), norm="ortho")
    spec = spec * high_band_mask(h, w, x.device)
    return torch.fft.irfft2(spec, s=(h, w), norm="ortho").to(x.dtype)


def high_frequency_error(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-clip high-frequency error with the definition of :mod:`medsora.metrics.reconstruction`
    (``hf_error``), on float videos (no uint8 rounding): per frame, the error energy of the
    orthonormal 2-D DFT above 0.25 cycles/pixel *radially*, over ``3·H·W`` values, in
    ``[0, 1]`` pixel units; averaged over frames.

    Args:
        recon, target: ``B×C×F×H×W`` videos in ``[-1, 1]``.
    Returns:
        ``B`` values (the part of the MSE carried by fine detail).
    """
    from medsora.metrics.reconstruction import high_band_mask

    err = (fft_ready(recon) - fft_ready(target)) / 2  # [0, 1] pixel units
    h, w = err.shape[-2:]
    energy = torch.fft.fft2(err, norm="ortho").abs().square() * high_band_mask(h, w).to(err.device)
    return energy.sum(dim=(1, 3, 4)).div(err.shape[1] * h * w).mean(dim=1)
