"""VBench imaging quality: MUSIQ (SPAQ weights, through pyiqa) on every frame.

Protocol (VBench ``imaging_quality.py``, its default "longer" mode): frames whose
longer side exceeds 512 are resized so that it is 512, scaled to [0, 1], scored by
MUSIQ (0-100); a video's score is the mean over its frames, the set's the mean over
videos, divided by 100.
"""
from __future__ import annotations

import os

import torch
from torch import Tensor, nn
from torchvision.transforms import functional as TF

from medsora.metrics.base import PerVideoMetric, VideoScore
from medsora.metrics.weights import require_package

__all__ = ["ImagingQuality", "load_musiq"]


def load_musiq(path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """pyiqa's MUSIQ architecture with a local checkpoint (VBench uses musiq_spaq_ckpt-358bb6af.pth)."""
    require_package("pyiqa", "pyiqa", "Imaging quality (MUSIQ)")
    from pyiqa.archs.musiq_arch import MUSIQ

    return MUSIQ(pretrained_model_path=str(path)).to(device).eval()


class ImagingQuality(PerVideoMetric):
    """``scorer`` maps one image 1×3×H×W in [0, 1] to a quality score in [0, 100]."""

    name = "imaging_quality"
    higher_is_better = True
    protocol = "VBench: every native frame, longer side capped at 512, MUSIQ (SPAQ) / 100, mean over videos"

    def __init__(self, scorer: nn.Module, max_side: int = 512, device: str | torch.device = "cpu") -> None:
        super().__init__()
        self.scorer = scorer
        self.max_side = max_side
        self.device = torch.device(device)

    def preprocess(self, video: Tensor) -> Tensor:
        """uint8 T×H×W×3 -> float T×3×h×w in [0, 1], resized as VBench does."""
        x = video.permute(0, 3, 1, 2)
        h, w = x.shape[-2:]
        if max(h, w) > self.max_side:
            scale = self.max_side / max(h, w)
            x = TF.resize(x, [int(scale * h), int(scale * w)])
        return x.float() / 255

    @torch.no_grad()
    def score(self, video: Tensor, meta: dict) -> VideoScore:
        frames = self.preprocess(video).to(self.device)
        # MUSIQ's multi-scale patching is per image, so frames go one at a time as in VBench.
        total = sum(float(self.scorer(frame[None])) for frame in frames)
        return VideoScore(total / frames.shape[0] / 100.0, 1)
