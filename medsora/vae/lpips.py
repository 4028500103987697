"""LPIPS (AlexNet) perceptual loss whose weights come from a local file, never a download.

torchmetrics ships the LPIPS linear heads inside its package but fetches the AlexNet
backbone from the internet. We build torchmetrics' LPIPS network with a random
backbone (``pnet_rand=True``: no download) and load the backbone from the standard
torchvision AlexNet checkpoint (``alexnet-owt-7be5be79.pth``): ``vae.lpips_weights``
or, when unset, the file torchvision leaves in the torch hub cache.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torchvision
from torch import nn
from torchmetrics.functional.image.lpips import _NoTrainLpips

LPIPS_MODES = ("optional", "required", "off")
ALEXNET_FILE = Path(torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url).name


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
        self.net = _NoTrainLpips(pretrained=True, net="alex", pnet_rand=True)
        stages = (self.net.net.slice1, self.net.net.slice2, self.net.net.slice3, self.net.net.slice4, self.net.net.slice5)
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            for stage in stages:  # the slices keep torchvision's layer indices as child names
                for index, layer in stage.named_children():
                    names = [name for name, _ in layer.named_parameters()]
                    layer.load_state_dict({name: state[f"features.{index}.{name}"] for name in names})
        except Exception as err:  # unpickling errors, missing keys, wrong shapes, not a dict
            raise ValueError(
                f"{weights} (vae.lpips_weights) is not a torchvision AlexNet state dict ({ALEXNET_FILE}): "
                f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            ) from err
        self.requires_grad_(False)

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
        "vae.lpips_weights=PATH; or turn LPIPS off with vae.lpips=\"'off'\" (quoted: YAML reads a bare off as false)"
    )
    if mode == "required":
        raise FileNotFoundError(msg)
    warnings.warn(msg + ". The LPIPS loss term is off for this run.", stacklevel=2)
    return None
