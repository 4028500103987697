"""Fréchet Video Distance with the Kinetics-400 I3D TorchScript of StyleGAN-V.

Protocol (StyleGAN-V ``src/metrics/frechet_video_distance.py`` and ``metric_utils.py``,
the most widely reused PyTorch FVD): one clip per video made of its first
``num_frames`` (16) consecutive frames, videos shorter than that discarded; clips are
handed to ``i3d_torchscript.pt`` as uint8 B×3×T×H×W and the detector is called with
``rescale=True, resize=True, return_features=True``, so it maps [0, 255] to [-1, 1]
and resizes every frame to 224×224 itself, and returns the 400-d pre-softmax logits
(the ``RGB/inception_i3d/Mean`` layer of the original TensorFlow FVD). Feature
statistics use StyleGAN-V's biased covariance (divided by N); the distance is
:func:`medsora.metrics.frechet.frechet_distance` in float64.
"""
from __future__ import annotations

import os
import warnings

import torch
from torch import Tensor, nn

from medsora.metrics.base import DistributionMetric, check_frames
from medsora.metrics.bootstrap import Resamplable
from medsora.metrics.feature_sets import FeatureSets, frechet_of_sets

__all__ = ["FVD", "I3DFeatures", "load_i3d"]


class I3DFeatures(nn.Module):
    """The I3D TorchScript behind StyleGAN-V's calling convention: uint8 clips B×3×T×H×W -> B×400 logits."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector.eval()

    @torch.no_grad()
    def forward(self, clips: Tensor) -> Tensor:
        if clips.dtype != torch.uint8 or clips.ndim != 5 or clips.shape[1] != 3:
            raise ValueError(f"I3D expects uint8 clips B×3×T×H×W, got dtype {clips.dtype} shape {tuple(clips.shape)}")
        features = self.detector(clips, rescale=True, resize=True, return_features=True)
        return features.float()


def load_i3d(path: str | os.PathLike, device: str | torch.device = "cpu") -> I3DFeatures:
    """Load ``i3d_torchscript.pt`` (or any TorchScript with the same ``forward(x, rescale, resize,
    return_features)`` signature) from a local file."""
    try:
        with warnings.catch_warnings():  # TorchScript is deprecated upstream, but it is the format FVD ships in
            warnings.simplefilter("ignore", FutureWarning)
            detector = torch.jit.load(str(path), map_location=device)
    except RuntimeError as err:
        raise ValueError(f"{path}: not a TorchScript archive loadable by torch.jit.load ({err}); FVD needs "
                         "StyleGAN-V's i3d_torchscript.pt") from err
    return I3DFeatures(detector).to(device)


class FVD(DistributionMetric, Resamplable):
    """FVD between the real and the generated set; feed videos with :meth:`update`. Clip features are kept per
    video, so the value can be bootstrapped (:mod:`medsora.metrics.bootstrap`)."""

    name = "fvd"
    higher_is_better = False

    def __init__(self, detector: nn.Module, num_frames: int = 16, batch_size: int = 8,
                 device: str | torch.device = "cpu") -> None:
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        self.detector = detector
        self.num_frames = num_frames
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.protocol = (f"StyleGAN-V: first {num_frames} frames of each video (shorter videos discarded), uint8 "
                         f"clips to I3D with rescale=True, resize=True (bilinear to 224×224 inside the detector), "
                         f"400-d pre-softmax logits, covariance divided by N")
        self.sets = FeatureSets()
        self.pending: dict[bool, list[Tensor]] = {True: [], False: []}
        self.discarded = {True: 0, False: 0}

    def update(self, video: Tensor, meta: dict, real: bool) -> None:
        video = check_frames(video)
        if video.shape[0] < self.num_frames:
            self.discarded[real] += 1
            return
        # Clips in one detector batch must share H×W; flush when the size changes.
        clip = video[: self.num_frames].permute(3, 0, 1, 2).contiguous()
        pending = self.pending[real]
        if pending and pending[0].shape != clip.shape:
            self._flush(real)
        pending.append(clip)
        if len(pending) >= self.batch_size:
            self._flush(real)

    def _flush(self, real: bool) -> None:
        if self.pending[real]:
            clips = torch.stack(self.pending[real]).to(self.device)
            for features in self.detector(clips).float().cpu():
                self.sets.add(real, features[None])
            self.pending[real] = []

    def set_sizes(self) -> tuple[int, int]:
        return self.sets.num_videos(True), self.sets.num_videos(False)

    def statistic(self, counts) -> float:
        return frechet_of_sets(self.sets, counts, unbiased=False)

    def compute(self) -> dict[str, float]:
        for real in (True, False):
            self._flush(real)
        for real, label in ((True, "real"), (False, "generated")):
            if self.sets.num_videos(real) < 2:
                raise ValueError(
                    f"{self.name.upper()} needs at least 2 {label} videos of >= {self.num_frames} frames, got "
                    f"{self.sets.num_videos(real)} ({self.discarded[real]} discarded as shorter); add videos or "
                    f"lower the clip length"
                )
        return {
            self.name: self.statistic(None),
            f"{self.name}_clips_real": self.sets.num_videos(True),
            f"{self.name}_clips_fake": self.sets.num_videos(False),
            f"{self.name}_discarded_short": self.discarded[True] + self.discarded[False],
        }
