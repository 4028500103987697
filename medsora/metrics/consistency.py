"""VBench subject consistency (DINO) and background consistency (CLIP).

VBench's formula, per video with frame features f_0..f_{T-1} (L2-normalised): every
frame i >= 1 contributes ``(max(0, cos(f_{i-1}, f_i)) + max(0, cos(f_0, f_i))) / 2``;
the set's score is the sum over all frame pairs of all videos divided by their count
(VBench pools per frame pair, not per video). Frames are native (all of them, no
temporal resampling); the spatial preprocessing is VBench's: DINO gets the short side
resized to 224 (bilinear, no antialias, no crop) and ImageNet normalisation; CLIP gets
bicubic resize to 224 + centre crop 224 and CLIP normalisation.

Networks load from local transformers folders: DINO as a ``ViTModel`` whose CLS token
after the final layer norm is the feature (identical to the torch.hub DINO model's
output), CLIP as ``CLIPVisionModelWithProjection`` whose ``image_embeds`` equal
``clip.encode_image``. Any ViT/CLIP checkpoint in that format can be swapped in.
"""
from __future__ import annotations

import os

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from medsora.metrics.base import PerVideoMetric, VideoScore

__all__ = ["FeatureConsistency", "FrameEncoder", "load_clip_encoder", "load_dino_encoder", "pair_consistency"]

_IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
_CLIP = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))


def pair_consistency(features: Tensor) -> VideoScore:
    """VBench consistency of one video's frame features T×D: sum over frames i >= 1 and the pair count."""
    f = F.normalize(features.double(), dim=-1)
    prev = (f[1:] * f[:-1]).sum(-1).clamp_min(0)
    first = (f[1:] * f[:1]).sum(-1).clamp_min(0)
    return VideoScore(total=float(((prev + first) / 2).sum()), count=f.shape[0] - 1)


class FrameEncoder(nn.Module):
    """VBench preprocessing + a transformers image model: uint8 frames T×H×W×3 -> features T×D.

    style: "dino" (short side to ``size``, CLS token of ``last_hidden_state``) or
    "clip" (bicubic resize + centre crop to ``size``, ``image_embeds``).
    """

    def __init__(self, model: nn.Module, style: str, size: int = 224, batch_size: int = 32) -> None:
        super().__init__()
        if style not in ("dino", "clip"):
            raise ValueError(f"style must be 'dino' or 'clip', got {style!r}")
        self.model = model.eval()
        self.style = style
        self.size = size
        self.batch_size = batch_size
        mean, std = _IMAGENET if style == "dino" else _CLIP
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def preprocess(self, frames: Tensor) -> Tensor:
        """uint8 T×H×W×3 -> normalised float T×3×h×w, resized on uint8 as VBench's transforms do."""
        x = frames.permute(0, 3, 1, 2).to(self.mean.device)
        if self.style == "dino":
            x = TF.resize(x, self.size, antialias=False)
        else:
            x = TF.resize(x, self.size, interpolation=InterpolationMode.BICUBIC, antialias=False)
            x = TF.center_crop(x, self.size)
        return (x.float() / 255 - self.mean) / self.std

    @torch.no_grad()
    def forward(self, frames: Tensor) -> Tensor:
        out = []
        for chunk in frames.split(self.batch_size):
            x = self.preprocess(chunk)
            if self.style == "dino":
                out.append(self.model(pixel_values=x, interpolate_pos_encoding=True).last_hidden_state[:, 0])
            else:
                out.append(self.model(pixel_values=x).image_embeds)
        return torch.cat(out).float()


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def load_dino_encoder(folder: str | os.PathLike, device: str | torch.device = "cpu", **kwargs) -> FrameEncoder:
    """DINO ViT from a local transformers folder (e.g. facebook/dino-vitb16)."""
    from transformers import ViTModel

    _quiet_transformers()
    model = ViTModel.from_pretrained(str(folder), add_pooling_layer=False)
    return FrameEncoder(model, "dino", **kwargs).to(device)


def load_clip_encoder(folder: str | os.PathLike, device: str | torch.device = "cpu", **kwargs) -> FrameEncoder:
    """CLIP image tower + projection from a local transformers folder (e.g. openai/clip-vit-base-patch32)."""
    from transformers import AutoConfig, CLIPConfig, CLIPVisionModelWithProjection

    _quiet_transformers()
    config = AutoConfig.from_pretrained(str(folder))
    if isinstance(config, CLIPConfig):
        # A full CLIP folder: the projection width lives in the top-level config, not in vision_config.
        vision = config.vision_config
        vision.projection_dim = config.projection_dim
        config = vision
    model = CLIPVisionModelWithProjection.from_pretrained(str(folder), config=config)
    return FrameEncoder(model, "clip", **kwargs).to(device)


class FeatureConsistency(PerVideoMetric):
    """Subject consistency (``name="subject_consistency"``, DINO encoder) or background consistency
    (``name="background_consistency"``, CLIP encoder)."""

    higher_is_better = True

    def __init__(self, name: str, encoder: FrameEncoder) -> None:
        super().__init__()
        self.name = name
        self.encoder = encoder
        net = "DINO" if encoder.style == "dino" else "CLIP"
        self.protocol = (f"VBench: all native frames, {net} features "
                         + ("of the short side resized to 224" if encoder.style == "dino" else
                            "of a bicubic 224 resize + centre crop")
                         + ", mean of cosine to previous and first frame, pooled over frame pairs")

    def score(self, video: Tensor, meta: dict) -> VideoScore:
        return pair_consistency(self.encoder(video))
