"""Frame features of both sets from one image network, computed once and shared by FID and KID.

FID and KID use the same InceptionV3 pool features of the same frames (every frame of
the first ``max_frames`` of each video). When both metrics are asked for they hold one
:class:`FrameFeatures`, which runs the network once per video: the evaluation loop
hands the same video tensor to every metric in turn, and a repeat of the last video
is recognised by identity.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from medsora.metrics.base import check_frames
from medsora.metrics.feature_sets import FeatureSets

__all__ = ["FrameFeatures"]


class FrameFeatures:
    """``feature``: uint8 N×3×H×W -> N×D (torch-fidelity's InceptionV3 or any stand-in)."""

    @classmethod
    def of(cls, feature: "nn.Module | FrameFeatures", max_frames: int = 16, batch_size: int = 32,
           device="cpu") -> "FrameFeatures":
        """``feature`` itself when it is already shared (FID and KID over one Inception pass), else a new one."""
        return feature if isinstance(feature, FrameFeatures) else cls(feature, max_frames, batch_size, device)

    def __init__(self, feature: nn.Module, max_frames: int = 16, batch_size: int = 32,
                 device: str | torch.device = "cpu") -> None:
        self.feature = feature.to(device).eval()
        self.max_frames = max_frames
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.sets = FeatureSets()
        self._last: tuple[Tensor, bool] | None = None  # a strong reference, so its id is never reused

    @torch.no_grad()
    def add(self, video: Tensor, real: bool) -> None:
        """Add the features of one uint8 T×H×W×3 video (once, however many metrics pass it on)."""
        if self._last is not None and self._last[0] is video and self._last[1] == real:
            return
        frames = check_frames(video)[: self.max_frames].permute(0, 3, 1, 2).contiguous()
        out = [self.feature(chunk.to(self.device)).reshape(chunk.shape[0], -1).float().cpu()
               for chunk in frames.split(self.batch_size)]
        self.sets.add(real, torch.cat(out))
        self._last = (video, real)

    def protocol(self) -> str:
        return (f"every frame of the first {self.max_frames} of each video, uint8 to InceptionV3 (torch-fidelity, "
                f"TF-compatible bilinear resize to 299×299 inside the network)")
