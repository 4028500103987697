"""Reconstruction metrics for the VAE: PSNR, SSIM, LPIPS and high-frequency error.

A reconstruction is compared with its source video frame by frame: the same source
frames (a whole video, or a clip's start and stride) and the same crop (the source
resized and centre-cropped to the reconstruction's size as the data pipeline made the
clip; the reconstruction itself is never resampled), see
:func:`medsora.metrics.base.align_pair`; on RGB in [0, 1]; a set's value is the mean
over all frames of all pairs.

High-frequency error (``hf_error``), defined here because no standard one exists:
for each frame and channel take the orthonormal 2-D DFT of the error
``E = F(fake - real)``; the *upper half of the spectrum* is every frequency whose
radius ``sqrt(fy^2 + fx^2)`` exceeds half the Nyquist frequency, 0.25 cycles/pixel
(``torch.fft.fftfreq`` units). ``hf_error`` of a frame is the error energy in that
band divided by the number of values (3·H·W) — by Parseval, the part of the frame's
MSE carried by fine detail (a uniform brightness shift scores 0, lost texture
scores high). ``hf_error_rel`` pools the set: that band's error energy over the
source's energy in the same band (0 = detail reproduced, about 1 = detail lost).
"""
from __future__ import annotations

import os

import torch
from torch import Tensor, nn
from torchmetrics.functional.image import structural_similarity_index_measure

from medsora.metrics.base import PAIR_ALIGNMENT, PairedMetric

__all__ = ["HighFrequencyError", "LPIPSMetric", "PSNR", "SSIM", "high_band_mask", "load_lpips"]

PSNR_CAP_DB = 100.0


class PSNR(PairedMetric):
    name = "psnr"
    higher_is_better = True
    protocol = f"per frame, RGB in [0, 1], data range 1 (identical frames count as {PSNR_CAP_DB:.0f} dB)" + PAIR_ALIGNMENT

    def frame_scores(self, real: Tensor, fake: Tensor) -> Tensor:
        mse = (real.double() - fake.double()).square().flatten(1).mean(1)
        return (10 * torch.log10(1.0 / mse.clamp_min(10 ** (-PSNR_CAP_DB / 10)))).float()


class SSIM(PairedMetric):
    name = "ssim"
    higher_is_better = True
    protocol = ("per frame, RGB in [0, 1], torchmetrics SSIM (Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03; mean over "
                "the whole reflection-padded map, where scikit-image crops 5 px borders)" + PAIR_ALIGNMENT)

    def frame_scores(self, real: Tensor, fake: Tensor) -> Tensor:
        # float32 as torchmetrics' users run it (comparable numbers; float64 convolutions are ~20× slower on CPU).
        # Its windowed variances carry ~1e-7 of round-off against C2 = 9e-4: SSIM is good to ~1e-4.
        return structural_similarity_index_measure(fake, real, data_range=1.0, reduction="none")


def load_lpips(alexnet_path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """LPIPS (AlexNet) with the linear layers shipped in torchmetrics and the ImageNet AlexNet backbone
    read from a local torchvision file (``alexnet-owt-7be5be79.pth``); maps two N×3×H×W images in
    [-1, 1] to N×1×1×1 distances (:func:`medsora.pretrained.lpips_net.alexnet_lpips`)."""
    from medsora.pretrained.lpips_net import alexnet_lpips

    return alexnet_lpips(alexnet_path, "the LPIPS metric's AlexNet file").to(device)


class LPIPSMetric(PairedMetric):
    name = "lpips"
    higher_is_better = False
    protocol = "per frame, LPIPS-AlexNet v0.1 on native-size frames in [-1, 1]" + PAIR_ALIGNMENT

    def __init__(self, model: nn.Module, batch_size: int = 16, device: str | torch.device = "cpu") -> None:
        super().__init__()
        self.model = model
        self.batch_size = batch_size
        self.device = torch.device(device)

    @torch.no_grad()
    def frame_scores(self, real: Tensor, fake: Tensor) -> Tensor:
        out = [self.model(r.to(self.device) * 2 - 1, f.to(self.device) * 2 - 1).flatten().cpu()
               for r, f in zip(real.split(self.batch_size), fake.split(self.batch_size))]
        return torch.cat(out)


def high_band_mask(height: int, width: int, cutoff: float = 0.25) -> Tensor:
    """Boolean H×W mask of DFT bins whose radial frequency exceeds ``cutoff`` cycles/pixel."""
    fy = torch.fft.fftfreq(height, dtype=torch.float64).view(-1, 1)
    fx = torch.fft.fftfreq(width, dtype=torch.float64).view(1, -1)
    return (fy.square() + fx.square()).sqrt() > cutoff


def _band_energy(frames: Tensor, mask: Tensor) -> Tensor:
    """Per-frame energy of frames T×3×H×W in the masked band of the orthonormal DFT -> T."""
    spectrum = torch.fft.fft2(frames.double(), norm="ortho")
    return (spectrum.abs().square() * mask).sum(dim=(1, 2, 3))


class HighFrequencyError(PairedMetric):
    name = "hf_error"
    higher_is_better = False
    protocol = ("per frame, RGB in [0, 1]: error energy above 0.25 cycles/pixel (radial) of the orthonormal 2-D DFT "
                "over 3·H·W; hf_error_rel = that energy over the source's, pooled over the set" + PAIR_ALIGNMENT)

    def __init__(self) -> None:
        super().__init__()
        self.error_energy = 0.0
        self.reference_energy = 0.0

    def frame_scores(self, real: Tensor, fake: Tensor) -> Tensor:
        mask = high_band_mask(*real.shape[-2:])
        error = _band_energy(fake - real, mask)
        # The pooled ratio needs the band energies of every frame; keep their running sums here.
        self.error_energy += float(error.sum())
        self.reference_energy += float(_band_energy(real, mask).sum())
        return error / real[0].numel()

    def compute(self) -> dict[str, float]:
        out = super().compute()
        out["hf_error_rel"] = self.error_energy / self.reference_energy if self.reference_energy > 0 else float("nan")
        return out
