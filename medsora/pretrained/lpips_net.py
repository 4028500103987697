"""LPIPS-AlexNet (v0.1) built without a download: torchmetrics' network + a local torchvision AlexNet file.

torchmetrics ships the LPIPS linear heads inside its package but fetches the AlexNet backbone
from the internet. :func:`alexnet_lpips` builds torchmetrics' network with a random backbone
(``pnet_rand=True``: no download) and loads the backbone from the standard torchvision AlexNet
checkpoint (``alexnet-owt-7be5be79.pth``). Used by the VAE's perceptual loss
(:mod:`medsora.vae.lpips`) and by the LPIPS metric (:mod:`medsora.metrics.reconstruction`).

``_NoTrainLpips`` is private to torchmetrics: its public ``LearnedPerceptualImagePatchSimilarity``
builds the same network but loads the backbone through torchvision's download cache and only
returns batch means. The private class is pinned by ``torchmetrics<2.0`` in setup.py and its use
here is checked by ``tests/vae/test_vae_losses.py`` and the LPIPS tests of ``tests/metrics``.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torchvision
from torch import nn

ALEXNET_FILE = Path(torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url).name


def alexnet_lpips(weights: str | os.PathLike, source: str = "LPIPS weights") -> nn.Module:
    """torchmetrics' ``_NoTrainLpips`` (AlexNet) with its backbone read from ``weights``.

    Maps two N×3×H×W images in [-1, 1] to N×1×1×1 distances; parameters frozen, eval mode.

    Args:
        weights: a torchvision AlexNet state-dict file (only its ``features.*`` entries are used).
        source: where the path came from, for the error message (e.g. ``vae.lpips_weights``).
    Raises:
        ValueError: the file is not a torchvision AlexNet state dict.
    """
    from torchmetrics.functional.image.lpips import _NoTrainLpips

    net = _NoTrainLpips(pretrained=True, net="alex", pnet_rand=True)
    try:
        state = torch.load(str(weights), map_location="cpu", weights_only=True)
        for stage in net.net.children():  # the slices keep torchvision's layer indices as child names
            for index, layer in stage.named_children():
                names = [name for name, _ in layer.named_parameters()]
                layer.load_state_dict({name: state[f"features.{index}.{name}"] for name in names})
    except Exception as err:  # unpickling errors, missing keys, wrong shapes, not a dict
        raise ValueError(
            f"{weights} ({source}) is not a torchvision AlexNet state dict ({ALEXNET_FILE}): "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        ) from err
    return net.eval().requires_grad_(False)
