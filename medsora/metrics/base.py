"""The three shapes a video metric takes, and the conversion from model output to frames.

Every metric consumes videos the way they are stored: ``uint8`` tensors T×H×W×3
(what ``medsora.data.sources.read_video`` returns), and resamples them as its
reference implementation does; ``protocol`` says how, and ends up in the report.

* :class:`DistributionMetric` compares the real and the generated *sets* (FVD, FID) or
  scores the generated set as a whole (IS).
* :class:`PerVideoMetric` scores every video on its own (VBench dimensions); the set's
  value pools the per-video scores.
* :class:`PairedMetric` compares a reconstruction with its source video (PSNR, SSIM…).
"""
from __future__ import annotations

import abc
import dataclasses

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["PAIR_ALIGNMENT", "DistributionMetric", "PairedMetric", "PerVideoMetric", "VideoScore", "align_pair", "check_frames",
           "to_uint8_frames"]


def check_frames(video: Tensor, where: str = "video") -> Tensor:
    """Validate a uint8 T×H×W×3 video and return it."""
    if video.dtype != torch.uint8 or video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(f"{where}: expected uint8 frames T×H×W×3, got dtype {video.dtype} shape {tuple(video.shape)}")
    return video


def to_uint8_frames(video: Tensor) -> list[Tensor]:
    """Model output B×3×F×H×W in [-1, 1] -> B uint8 videos F×H×W×3, quantised as a saved file would be."""
    if video.ndim != 5 or video.shape[1] != 3:
        raise ValueError(f"expected videos B×3×F×H×W in [-1, 1], got shape {tuple(video.shape)}")
    frames = ((video.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return list(frames.permute(0, 2, 3, 4, 1).cpu())


@dataclasses.dataclass
class VideoScore:
    """A video's contribution: ``total`` over ``count`` items (frames, frame pairs or 1 video)."""

    total: float
    count: int

    @property
    def value(self) -> float:
        return self.total / self.count


class _Metric(abc.ABC):
    name: str  # key in the report
    protocol: str  # how videos are resampled and which reference is followed
    higher_is_better: bool

    @abc.abstractmethod
    def compute(self) -> dict[str, float]:
        """``{name: value, ...}`` plus any bookkeeping counts."""


class DistributionMetric(_Metric):
    """Accumulates features of whole sets; ``uses_real`` is False for IS-like scores of the generated set."""

    uses_real = True

    @abc.abstractmethod
    def update(self, video: Tensor, meta: dict, real: bool) -> None:
        """Add one uint8 T×H×W×3 video to the real or the generated set."""


class PerVideoMetric(_Metric):
    """Scores each video; a set's value is ``sum(total) / sum(count)`` over its videos (VBench pools either
    per video or per frame pair, which the choice of ``count`` reproduces)."""

    def __init__(self) -> None:
        self.scores: dict[str, list[VideoScore]] = {"fake": [], "real": []}

    @abc.abstractmethod
    def score(self, video: Tensor, meta: dict) -> VideoScore:
        """Score one uint8 T×H×W×3 video."""

    def update(self, video: Tensor, meta: dict, real: bool) -> None:
        self.scores["real" if real else "fake"].append(self.score(check_frames(video), meta))

    def compute(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for split, key in (("fake", self.name), ("real", f"{self.name}_real")):
            count = sum(s.count for s in self.scores[split])
            if count:
                out[key] = sum(s.total for s in self.scores[split]) / count
        if not out:
            raise ValueError(f"{self.name}: no video could be scored (too few frames?)")
        return out


def align_pair(real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor, bool]:
    """Make a reconstruction comparable with its source: keep the common leading frames and resize the
    reconstruction to the source's H×W (bilinear, antialiased) when they differ.

    real, fake: uint8 T×H×W×3. Returns both as float T'×3×H×W in [0, 1] and whether anything was resampled.
    """
    length = min(real.shape[0], fake.shape[0])
    resampled = length != real.shape[0] or length != fake.shape[0]
    r = real[:length].permute(0, 3, 1, 2).float() / 255
    f = fake[:length].permute(0, 3, 1, 2).float() / 255
    if f.shape[-2:] != r.shape[-2:]:
        f = F.interpolate(f, size=r.shape[-2:], mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
        resampled = True
    return r, f, resampled


PAIR_ALIGNMENT = "; common leading frames, the reconstruction resized (bilinear) to the source's size if they differ"


class PairedMetric(_Metric):
    """Mean over all frames of all pairs of a per-frame score of a reconstruction against its source."""

    def __init__(self) -> None:
        self.total = 0.0
        self.frames = 0
        self.pairs = 0
        self.resampled = 0

    @abc.abstractmethod
    def frame_scores(self, real: Tensor, fake: Tensor) -> Tensor:
        """Per-frame scores T' of aligned float T'×3×H×W frames in [0, 1]."""

    def update_pair(self, real: Tensor, fake: Tensor) -> None:
        r, f, resampled = align_pair(check_frames(real, "real video"), check_frames(fake, "generated video"))
        scores = self.frame_scores(r, f).double()
        self.total += float(scores.sum())
        self.frames += scores.numel()
        self.pairs += 1
        self.resampled += int(resampled)

    def compute(self) -> dict[str, float]:
        if self.frames == 0:
            raise ValueError(f"{self.name}: no video pair was compared")
        return {self.name: self.total / self.frames, f"{self.name}_pairs": self.pairs,
                f"{self.name}_resampled_pairs": self.resampled}
