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

import numpy as np
import torch
from torch import Tensor

from medsora.metrics.bootstrap import Resamplable

__all__ = ["PAIR_ALIGNMENT", "DistributionMetric", "PairedMetric", "PairingError", "PerVideoMetric", "VideoScore",
           "align_pair", "check_frames", "match_source_crop", "source_frame_indices", "to_uint8_frames"]


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


class PerVideoMetric(_Metric, Resamplable):
    """Scores each video; a set's value is ``sum(total) / sum(count)`` over its videos (VBench pools either
    per video or per frame pair, which the choice of ``count`` reproduces). Bootstrapped over the generated
    videos (:mod:`medsora.metrics.bootstrap`)."""

    def __init__(self) -> None:
        self.scores: dict[str, list[VideoScore]] = {"fake": [], "real": []}

    @abc.abstractmethod
    def score(self, video: Tensor, meta: dict) -> VideoScore:
        """Score one uint8 T×H×W×3 video."""

    def update(self, video: Tensor, meta: dict, real: bool) -> None:
        self.scores["real" if real else "fake"].append(self.score(check_frames(video), meta))

    def set_sizes(self) -> tuple[int]:
        return (len(self.scores["fake"]),)

    def statistic(self, counts) -> float:
        c = np.asarray(counts[0], dtype=np.float64)
        totals = np.array([s.total for s in self.scores["fake"]], dtype=np.float64)
        items = np.array([s.count for s in self.scores["fake"]], dtype=np.float64)
        if c @ items == 0:
            raise ValueError(f"{self.name}: no scored item in this resample")
        return float(c @ totals / (c @ items))

    def compute(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for split, key in (("fake", self.name), ("real", f"{self.name}_real")):
            count = sum(s.count for s in self.scores[split])
            if count:
                out[key] = sum(s.total for s in self.scores[split]) / count
        if not out:
            raise ValueError(f"{self.name}: no video could be scored (too few frames?)")
        return out


class PairingError(ValueError):
    """A reconstruction cannot be matched frame for frame and pixel for pixel with its source."""


def source_frame_indices(source_len: int, recon_len: int, start: int | None = None,
                         stride: int | None = None) -> list[int]:
    """The source frames a reconstruction of ``recon_len`` frames shows.

    Without ``start``/``stride`` the two must have the same length (a whole-video reconstruction);
    otherwise frame i of the reconstruction is source frame ``start + i·stride``, clamped to the last
    frame (the data pipeline pads a short video with its last frame). Raises :class:`PairingError`.
    """
    if start is None and stride is None:
        if source_len != recon_len:
            raise PairingError(
                f"the reconstruction has {recon_len} frames and its source {source_len}; pass --pair-start K and "
                f"--pair-stride S (the clip's first frame and frame stride, e.g. data.frame_stride) so the same "
                f"frames are compared")
        return list(range(source_len))
    start, stride = start or 0, stride or 1
    if start < 0 or stride < 1 or start >= source_len:
        raise PairingError(f"--pair-start {start} / --pair-stride {stride} do not fit a source of {source_len} frames")
    return [min(start + i * stride, source_len - 1) for i in range(recon_len)]


def match_source_crop(source: Tensor, height: int, width: int) -> Tensor:
    """Source frames T×3×H×W -> T×3×height×width as the data pipeline crops a clip: the short side resized so the
    clip covers ``height×width`` (antialiased bilinear), then the centre crop (``data.crop: center``)."""
    import torchvision.transforms.v2.functional as TF

    h, w = source.shape[-2:]
    if (h, w) == (height, width):
        return source
    if height == width:  # the pipeline's clip: short side to the size (torchvision's rounding), square crop
        size = [height]
    else:
        scale = max(height / h, width / w)
        size = [max(height, round(h * scale)), max(width, round(w * scale))]
    return TF.center_crop(TF.resize(source, size, antialias=True).clamp(0, 1), [height, width])


def align_pair(real: Tensor, fake: Tensor, start: int | None = None,
               stride: int | None = None) -> tuple[Tensor, Tensor, bool]:
    """Make a reconstruction comparable with its source: the same frames and the same crop.

    Frames follow :func:`source_frame_indices` (same length, or ``start``/``stride`` given); when the sizes differ
    the *source* is resized and centre-cropped to the reconstruction's size as the data pipeline made the clip
    (:func:`match_source_crop`) — the reconstruction is never stretched. real, fake: uint8 T×H×W×3. Returns both
    as float T'×3×h×w in [0, 1] and whether the source was resampled. Raises :class:`PairingError`.
    """
    indices = source_frame_indices(real.shape[0], fake.shape[0], start, stride)
    r = real[indices].permute(0, 3, 1, 2).float() / 255
    f = fake.permute(0, 3, 1, 2).float() / 255
    resampled = f.shape[-2:] != r.shape[-2:]
    if resampled:
        if f.shape[-2] > r.shape[-2] and f.shape[-1] > r.shape[-1]:
            raise PairingError(f"the reconstruction ({f.shape[-2]}×{f.shape[-1]}) is larger than its source "
                               f"({r.shape[-2]}×{r.shape[-1]}); compare at the source's size")
        r = match_source_crop(r, *f.shape[-2:])
    return r, f, resampled


PAIR_ALIGNMENT = ("; the same frames (whole videos, or the clip's start and stride), the source resized and "
                  "centre-cropped to the reconstruction's size as the data pipeline crops a clip")


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

    def update_pair(self, real: Tensor, fake: Tensor, start: int | None = None, stride: int | None = None) -> None:
        """Add a (source, reconstruction) pair of uint8 T×H×W×3 videos; see :func:`align_pair`."""
        r, f, resampled = align_pair(check_frames(real, "real video"), check_frames(fake, "generated video"),
                                     start, stride)
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
