"""FID and Inception Score on video frames, through torchmetrics and torch-fidelity's InceptionV3.

Protocol: every frame among the first ``max_frames`` (16, the FVD clip) of each video
is an image; frames go to the network as uint8 N×3×H×W and torch-fidelity's
extractor resizes them to 299×299 with its TensorFlow-1-compatible bilinear resize
(``antialias=False`` in torchmetrics, matching torch-fidelity and the original TF FID)
and rescales to [-1, 1] itself. FID uses the 2048-d pool features, kept per video
(:class:`~medsora.metrics.frame_features.FrameFeatures`, shared with KID) with float64,
unbiased covariances as torchmetrics computes them; the distance is taken with our
stable :func:`~medsora.metrics.frechet.frechet_distance`. IS uses the unbiased logits, 10
splits, on the generated frames only, with a fixed shuffle seed so reruns agree.
"""
from __future__ import annotations

import os
import warnings

import torch
from torch import Tensor, nn
from torchmetrics.image.inception import InceptionScore

from medsora.metrics.base import DistributionMetric, check_frames
from medsora.metrics.bootstrap import Resamplable
from medsora.metrics.feature_sets import frechet_of_sets
from medsora.metrics.frame_features import FrameFeatures
from medsora.metrics.weights import require_package

__all__ = ["FID", "InceptionScoreMetric", "load_inception"]


def load_inception(path: str | os.PathLike, feature: str = "2048") -> nn.Module:
    """torch-fidelity's FID InceptionV3 from a local weights file, returning feature ``feature``
    ("2048" pool features for FID, "logits_unbiased" for IS) for uint8 images N×3×H×W."""
    require_package("torch_fidelity", "torch-fidelity", "FID/IS's InceptionV3")
    from torchmetrics.image.fid import NoTrainInceptionV3

    return NoTrainInceptionV3(name="inception-v3-compat", features_list=[feature],
                              feature_extractor_weights_path=str(path), antialias=False)


def _frames(video: Tensor, max_frames: int) -> Tensor:
    return check_frames(video)[:max_frames].permute(0, 3, 1, 2).contiguous()


def _protocol(max_frames: int) -> str:
    return (f"every frame of the first {max_frames} of each video, uint8 to InceptionV3 (torch-fidelity, TF-"
            f"compatible bilinear resize to 299×299 inside the network)")


class FID(DistributionMetric, Resamplable):
    """Fréchet Inception Distance between real and generated frames.

    ``feature``: a module mapping uint8 N×3×H×W -> N×D (:func:`load_inception` or any stand-in), or a
    :class:`~medsora.metrics.frame_features.FrameFeatures` shared with KID. Features are kept per video, so the
    value can be bootstrapped by video (:mod:`medsora.metrics.bootstrap`).
    """

    name = "fid"
    higher_is_better = False

    def __init__(self, feature: nn.Module | FrameFeatures, max_frames: int = 16, batch_size: int = 32,
                 device: str | torch.device = "cpu") -> None:
        self.frames = FrameFeatures.of(feature, max_frames, batch_size, device)
        self.protocol = self.frames.protocol() + ", 2048-d pool features, unbiased covariance"

    def update(self, video: Tensor, meta: dict, real: bool) -> None:
        self.frames.add(video, real)

    def set_sizes(self) -> tuple[int, int]:
        return self.frames.sets.num_videos(True), self.frames.sets.num_videos(False)

    def statistic(self, counts) -> float:
        return frechet_of_sets(self.frames.sets, counts, unbiased=True)

    def compute(self) -> dict[str, float]:
        sets = self.frames.sets
        n_real, n_fake = sets.num_rows(True), sets.num_rows(False)
        if n_real < 2 or n_fake < 2:
            raise ValueError(f"FID needs at least 2 real and 2 generated frames, got {n_real} and {n_fake}")
        return {"fid": self.statistic(None), "fid_frames_real": n_real, "fid_frames_fake": n_fake}


class InceptionScoreMetric(DistributionMetric):
    """Inception Score of the generated frames (``feature``: uint8 N×3×H×W -> N×classes logits)."""

    name = "is"
    higher_is_better = True
    uses_real = False

    def __init__(self, feature: nn.Module, max_frames: int = 16, splits: int = 10, batch_size: int = 32,
                 device: str | torch.device = "cpu", seed: int = 0) -> None:
        self.max_frames = max_frames
        self.batch_size = batch_size
        self.seed = seed
        self.protocol = _protocol(max_frames) + f", unbiased logits, {splits} splits, generated frames only"
        with warnings.catch_warnings():  # its "features kept in memory" notice is expected here
            warnings.simplefilter("ignore", UserWarning)
            self.metric = InceptionScore(feature=feature, splits=splits).to(device)
        self.device = torch.device(device)
        self.frames = 0

    def update(self, video: Tensor, meta: dict, real: bool) -> None:
        if real:
            return
        frames = _frames(video, self.max_frames)
        for chunk in frames.split(self.batch_size):
            self.metric.update(chunk.to(self.device))
        self.frames += frames.shape[0]

    def compute(self) -> dict[str, float]:
        if self.frames < 2:
            raise ValueError(f"IS needs at least 2 generated frames, got {self.frames}")
        # torchmetrics shuffles with the global RNG before splitting; pin it without disturbing the caller's.
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            torch.manual_seed(self.seed)
            warnings.simplefilter("ignore", UserWarning)  # the std of a single split is NaN; reported as such
            mean, std = self.metric.compute()
        return {"is": float(mean), "is_std": float(std), "is_frames": self.frames}
