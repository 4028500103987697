"""LPIPS (AlexNet) perceptual loss whose weights come from a local file, never a download.

The network is :func:`medsora.pretrained.lpips_net.alexnet_lpips` (torchmetrics' LPIPS with the backbone
read from the torchvision AlexNet checkpoint): ``vae.lpips_weights`` or, when unset, the file
torchvision leaves in the torch hub cache.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from medsora.pretrained.lpips_net import ALEXNET_FILE, alexnet_lpips

LPIPS_MODES = ("optional", "required", "off")


def default_lpips_weights() -> Path:
    """Where torchvision caches its AlexNet weights: ``$TORCH_HOME/hub/checkpoints/alexnet-owt-….pth``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_FILE


def _frames(video: torch.Tensor) -> torch.Tensor:
    """``B×C×F×H×W -> (B·F)×C×H×W``."""
    return video.transpose(1, 2).flatten(0, 1)


class LPIPS(nn.Module):
    """Frame-wise LPIPS between two videos: ``(B×3×F×H×W, B×3×F×H×W) -> scalar`` (mean over frames).

    Inputs in ``[-1, 1]``; frames must be at least 32×32 (AlexNet's receptive field).
    The network stays in eval mode and its parameters never train; gradients flow to
    the inputs.

    Args:
        weights: a torchvision AlexNet state-dict file (only its ``features.*`` entries are used).
    """

    def __init__(self, weights: str | Path):
        super().__init__()
        self.net = alexnet_lpips(weights, "vae.lpips_weights")

    def forward(self, recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.net(_frames(recon), _frames(target)).mean()


def load_lpips(weights: str | None, mode: str = "optional") -> LPIPS | None:
    """The LPIPS network for ``vae.lpips`` / ``vae.lpips_weights``, or ``None`` when it is off.

    ``mode="optional"``: a missing file turns LPIPS off with a warning naming the file;
    ``"required"``: a missing file raises ``FileNotFoundError``; ``"off"``: never loaded.
    """
    if mode not in LPIPS_MODES:
        raise ValueError(f"vae.lpips = {mode!r}: expected one of {LPIPS_MODES}")
    if mode == "off":
        return None
    path = Path(weights).expanduser() if weights else default_lpips_weights()
    if path.is_file():
        return LPIPS(path)
    msg = (
        f"LPIPS weights not found: {path} (vae.lpips_weights"
        + ("" if weights else ", unset: torch hub cache")
        + f"). To get them, run on a machine with internet `python -c \"import torchvision; "
        f"torchvision.models.alexnet(weights='IMAGENET1K_V1')\"`, copy {default_lpips_weights()} here and set "
        "vae.lpips_weights=PATH; or turn LPIPS off with vae.lpips=off"
    )
    if mode == "required":
        raise FileNotFoundError(msg)
    warnings.warn(msg + ". The LPIPS loss term is off for this run.", stacklevel=2)
    return None
