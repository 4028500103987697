"""Content-debiased FVD (CD-FVD): the Fréchet distance of VideoMAE-v2 clip features.

Ge et al. 2024 ("On the Content Bias in Fréchet Video Distance", the ``cd-fvd``
package; FEAT reports it) show that I3D's features judge mostly per-frame content and
barely notice temporal corruption; features of a self-supervised VideoMAE-v2 encoder
weigh motion far more. Protocol followed here: one clip per video made of its first
``config.num_frames`` (16) frames (shorter videos discarded, as for FVD); every frame
resized (antialiased bilinear) to the encoder's ``image_size`` (224) and normalised with
the processor's mean/std (ImageNet's by default); the encoder's patch tokens are
mean-pooled (then ``fc_norm``-ed when the folder holds a classification model, the
feature ``cd-fvd`` takes from its fine-tuned ViT-g); Fréchet distance with unbiased
covariances, as ``cd-fvd`` computes it with ``np.cov``.

The encoder is read from a local transformers folder (``VideoMAEModel`` /
``VideoMAEForVideoClassification`` format: ``config.json`` + weights), never downloaded.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from medsora.metrics.fvd import FVD
from medsora.metrics.feature_sets import frechet_of_sets
from medsora.metrics.weights import MissingWeights

__all__ = ["CDFVD", "VideoMAEFeatures", "load_videomae"]

_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class VideoMAEFeatures(nn.Module):
    """uint8 clips B×3×T×H×W -> B×D VideoMAE(-v2) features (the calling convention of :class:`FVD`'s detector)."""

    def __init__(self, encoder: nn.Module, fc_norm: nn.Module | None, num_frames: int, image_size: int,
                 mean=_IMAGENET_MEAN, std=_IMAGENET_STD) -> None:
        super().__init__()
        self.encoder = encoder.eval()
        self.fc_norm = fc_norm.eval() if fc_norm is not None else None
        self.num_frames = num_frames
        self.image_size = image_size
        self.register_buffer("mean", torch.tensor(mean).view(1, 1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 1, 3, 1, 1), persistent=False)

    @torch.no_grad()
    def forward(self, clips: Tensor, **_: bool) -> Tensor:
        if clips.dtype != torch.uint8 or clips.ndim != 5 or clips.shape[1] != 3:
            raise ValueError(f"VideoMAE expects uint8 clips B×3×T×H×W, got {clips.dtype} {tuple(clips.shape)}")
        b, _, t, h, w = clips.shape
        if t != self.num_frames:
            raise ValueError(f"this VideoMAE takes {self.num_frames}-frame clips, got {t}")
        frames = clips.permute(0, 2, 1, 3, 4).reshape(b * t, 3, h, w).float() / 255
        frames = F.interpolate(frames, size=(self.image_size, self.image_size), mode="bilinear",
                               align_corners=False, antialias=True)
        pixels = (frames.view(b, t, 3, self.image_size, self.image_size) - self.mean) / self.std
        tokens = self.encoder(pixel_values=pixels).last_hidden_state
        pooled = tokens.mean(1)
        return (self.fc_norm(pooled) if self.fc_norm is not None else pooled).float()


def load_videomae(folder: str | os.PathLike, device: str | torch.device = "cpu") -> VideoMAEFeatures:
    """A VideoMAE(-v2) encoder from a local transformers folder (``save_pretrained`` layout)."""
    from transformers import VideoMAEConfig, VideoMAEForVideoClassification, VideoMAEModel

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise MissingWeights(f"{folder}: no config.json; CD-FVD needs a transformers VideoMAE folder "
                             "(config.json + model.safetensors)")
    config = VideoMAEConfig.from_pretrained(folder)
    if config.model_type != "videomae":
        raise ValueError(f"{folder}: model_type '{config.model_type}', CD-FVD needs a VideoMAE encoder")
    if "VideoMAEForVideoClassification" in (config.architectures or []):
        model = VideoMAEForVideoClassification.from_pretrained(folder)
        encoder, fc_norm = model.videomae, model.fc_norm
    else:
        encoder, fc_norm = VideoMAEModel.from_pretrained(folder), None
    mean, std = _IMAGENET_MEAN, _IMAGENET_STD
    processor = folder / "preprocessor_config.json"
    if processor.is_file():
        spec = json.loads(processor.read_text(encoding="utf-8"))
        mean, std = tuple(spec.get("image_mean", mean)), tuple(spec.get("image_std", std))
    return VideoMAEFeatures(encoder, fc_norm, config.num_frames, config.image_size, mean, std).to(device)


class CDFVD(FVD):
    """CD-FVD between the real and the generated set (an :class:`FVD` over VideoMAE features)."""

    name = "cd_fvd"

    def __init__(self, detector: VideoMAEFeatures, batch_size: int = 8, device: str | torch.device = "cpu") -> None:
        super().__init__(detector, num_frames=detector.num_frames, batch_size=batch_size, device=device)
        self.protocol = (f"CD-FVD (Ge et al. 2024): first {detector.num_frames} frames of each video (shorter "
                         f"discarded), resized to {detector.image_size}² and mean/std-normalised, VideoMAE-v2 tokens "
                         f"mean-pooled{' + fc_norm' if detector.fc_norm is not None else ''}, unbiased covariance")

    def statistic(self, counts) -> float:
        return frechet_of_sets(self.sets, counts, unbiased=True)
