"""Training losses of the VAE, returned as named terms.

``loss = L1 + kl_weight·KL + ffl_weight·FFL + lpips_weight·LPIPS + temporal_weight·TD``
(MedSora: L1 + 0.1·LPIPS + 0.1·FFL). Terms with weight 0 (or LPIPS without weights)
are not computed.
"""
from __future__ import annotations

import torch
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from torch import nn

from medsora.pretrained.frozen import Frozen
from medsora.vae.lpips import LPIPS, load_lpips
from medsora.vae.spectrum import fft_ready


def focal_frequency_loss(recon: torch.Tensor, target: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """Focal frequency loss (Jiang et al., ICCV 2021), per frame and channel.

    Our implementation (no packaged version among our dependencies): the squared
    distance between the orthonormal 2-D spectra, weighted by the distance itself
    raised to ``alpha``, normalised to ``[0, 1]`` per frame and channel and detached,
    so training focuses on the frequencies it currently reconstructs worst.

    Args:
        recon, target: ``B×C×F×H×W``.
    Returns:
        A scalar.
    """
    diff = torch.fft.fft2(fft_ready(recon), norm="ortho") - torch.fft.fft2(fft_ready(target), norm="ortho")
    dist = diff.real.square() + diff.imag.square()
    with torch.no_grad():
        weight = dist.sqrt().pow(alpha)
        weight = weight / weight.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
        weight = torch.nan_to_num(weight, nan=0.0).clamp(0.0, 1.0)
    return (weight * dist).mean()


def temporal_difference_loss(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between consecutive-frame differences: ``B×C×F×H×W`` pair -> scalar (0 for one frame)."""
    if recon.shape[2] < 2:
        return recon.new_zeros(())
    return (recon.diff(dim=2) - target.diff(dim=2)).abs().mean()


def kl_divergence(posterior: DiagonalGaussianDistribution) -> torch.Tensor:
    """KL(q(z|x) ‖ N(0, I)) averaged per latent element (diffusers' ``.kl()`` sums over
    a fixed set of dims that does not fit 5-D latents)."""
    return 0.5 * (posterior.mean.square() + posterior.var - 1.0 - posterior.logvar).mean()


class VAELoss(nn.Module):
    """Weighted sum of the VAE terms.

    ``forward(recon, target: B×3×F×H×W, posterior) -> {"l1", "kl", ["ffl"], ["lpips"],
    ["temporal"], "loss"}``, every value a scalar tensor.

    The LPIPS network is held by :class:`medsora.pretrained.frozen.Frozen`: out of checkpoints,
    optimiser and DDP bookkeeping and EMA copies; it follows the inputs' device.
    """

    def __init__(
        self,
        kl_weight: float = 1e-6,
        ffl_weight: float = 0.1,
        lpips_weight: float = 0.1,
        temporal_weight: float = 0.0,
        lpips: LPIPS | None = None,
    ):
        super().__init__()
        self.kl_weight = kl_weight
        self.ffl_weight = ffl_weight
        self.lpips_weight = lpips_weight if lpips is not None else 0.0
        self.temporal_weight = temporal_weight
        self._lpips = Frozen(lpips) if lpips is not None else None

    @classmethod
    def from_config(cls, cfg) -> "VAELoss":
        """From a ``vae:`` config section; loads LPIPS per ``vae.lpips`` / ``vae.lpips_weights``."""
        lpips = load_lpips(cfg.lpips_weights, cfg.lpips) if cfg.lpips_weight > 0 else None
        return cls(cfg.kl_weight, cfg.ffl_weight, cfg.lpips_weight, cfg.temporal_weight, lpips)

    def forward(
        self, recon: torch.Tensor, target: torch.Tensor, posterior: DiagonalGaussianDistribution
    ) -> dict[str, torch.Tensor]:
        terms = {"l1": (recon - target).abs().mean(), "kl": kl_divergence(posterior)}
        loss = terms["l1"] + self.kl_weight * terms["kl"]
        if self.ffl_weight > 0:
            terms["ffl"] = focal_frequency_loss(recon, target)
            loss = loss + self.ffl_weight * terms["ffl"]
        if self.lpips_weight > 0:
            terms["lpips"] = self._lpips.on(recon.device)(recon, target)
            loss = loss + self.lpips_weight * terms["lpips"]
        if self.temporal_weight > 0:
            terms["temporal"] = temporal_difference_loss(recon, target)
            loss = loss + self.temporal_weight * terms["temporal"]
        terms["loss"] = loss
        return terms
