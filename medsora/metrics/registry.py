"""Metric names understood by ``python -m medsora.evaluate`` and how each is built from local weights.

``build_metric`` raises :class:`~medsora.metrics.weights.MetricUnavailable` (missing
weights or package, with the fix in the message) so the caller can skip the metric
and carry on, or stop under ``--strict``.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import torch

from medsora.metrics.base import DistributionMetric, PairedMetric, PerVideoMetric
from medsora.metrics.weights import require_package, resolve_weights

__all__ = ["DISTRIBUTION", "METRICS", "PAIRED", "PER_VIDEO", "EvalOptions", "build_metric"]

DISTRIBUTION = ("fvd", "cd_fvd", "fid", "kid", "is")
PER_VIDEO = ("subject_consistency", "background_consistency", "temporal_flickering", "motion_smoothness",
             "dynamic_degree", "imaging_quality")
PAIRED = ("psnr", "ssim", "lpips", "hf_error")
METRICS = DISTRIBUTION + PER_VIDEO + PAIRED


@dataclasses.dataclass
class EvalOptions:
    """What the metrics need besides the videos.

    weights: explicit paths by weight key (``i3d``, ``inception``, ``dino``, ``clip``, ``raft``, ``musiq``,
    ``lpips``); others are looked up in ``weights_dir`` (see :mod:`medsora.metrics.weights`).
    """

    weights: dict[str, str] = dataclasses.field(default_factory=dict)
    weights_dir: str | None = None
    device: str = "cuda" if torch.cuda.is_available() else "cpu"
    batch_size: int = 16
    fvd_frames: int = 16
    fid_frames: int = 16
    raft_iters: int = 20
    # objects built once and shared by several metrics (FID and KID share one pass of InceptionV3)
    shared: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def path(self, key: str) -> Path:
        return resolve_weights(key, self.weights.get(key), self.weights_dir)


def _fvd(o: EvalOptions):
    from medsora.metrics.fvd import FVD, load_i3d

    return FVD(load_i3d(o.path("i3d"), o.device), num_frames=o.fvd_frames, batch_size=o.batch_size, device=o.device)


def _frame_features(o: EvalOptions):
    """The InceptionV3 pool features of the frames, one pass shared by FID and KID."""
    if "inception_frames" not in o.shared:
        from medsora.metrics.fid import load_inception
        from medsora.metrics.frame_features import FrameFeatures

        require_package("torch_fidelity", "torch-fidelity", "FID/KID's InceptionV3")
        o.shared["inception_frames"] = FrameFeatures(load_inception(o.path("inception"), "2048"),
                                                     max_frames=o.fid_frames, batch_size=o.batch_size,
                                                     device=o.device)
    return o.shared["inception_frames"]


def _fid(o: EvalOptions):
    from medsora.metrics.fid import FID

    return FID(_frame_features(o))


def _kid(o: EvalOptions):
    from medsora.metrics.kid import KID

    return KID(_frame_features(o))


def _cd_fvd(o: EvalOptions):
    from medsora.metrics.cd_fvd import CDFVD, load_videomae

    return CDFVD(load_videomae(o.path("videomae"), o.device), batch_size=o.batch_size, device=o.device)


def _is(o: EvalOptions):
    from medsora.metrics.fid import InceptionScoreMetric, load_inception

    require_package("torch_fidelity", "torch-fidelity", "FID/IS's InceptionV3")
    path = o.path("inception")
    return InceptionScoreMetric(load_inception(path, "logits_unbiased"), max_frames=o.fid_frames,
                                batch_size=o.batch_size, device=o.device)


def _subject(o: EvalOptions):
    from medsora.metrics.consistency import FeatureConsistency, load_dino_encoder

    return FeatureConsistency("subject_consistency", load_dino_encoder(o.path("dino"), o.device,
                                                                       batch_size=o.batch_size))


def _background(o: EvalOptions):
    from medsora.metrics.consistency import FeatureConsistency, load_clip_encoder

    return FeatureConsistency("background_consistency", load_clip_encoder(o.path("clip"), o.device,
                                                                          batch_size=o.batch_size))


def _flicker(o: EvalOptions):
    from medsora.metrics.temporal_flickering import TemporalFlickering

    return TemporalFlickering()


def _motion(o: EvalOptions):
    from medsora.metrics.flow_fields import load_raft_flow
    from medsora.metrics.motion_smoothness import MotionSmoothness

    return MotionSmoothness(load_raft_flow(o.path("raft"), o.device, o.raft_iters), device=o.device)


def _dynamic(o: EvalOptions):
    from medsora.metrics.dynamic_degree import DynamicDegree
    from medsora.metrics.flow_fields import load_raft_flow

    return DynamicDegree(load_raft_flow(o.path("raft"), o.device, o.raft_iters), device=o.device)


def _imaging(o: EvalOptions):
    from medsora.metrics.imaging_quality import ImagingQuality, load_musiq

    require_package("pyiqa", "pyiqa", "Imaging quality (MUSIQ)")
    path = o.path("musiq")
    return ImagingQuality(load_musiq(path, o.device), device=o.device)


def _paired(cls_name: str):
    def build(o: EvalOptions):
        from medsora.metrics import reconstruction

        return getattr(reconstruction, cls_name)()
    return build


def _lpips(o: EvalOptions):
    from medsora.metrics.reconstruction import LPIPSMetric, load_lpips

    return LPIPSMetric(load_lpips(o.path("lpips"), o.device), batch_size=o.batch_size, device=o.device)


_BUILDERS: dict[str, Callable[[EvalOptions], DistributionMetric | PerVideoMetric | PairedMetric]] = {
    "fvd": _fvd, "cd_fvd": _cd_fvd, "fid": _fid, "kid": _kid, "is": _is,
    "subject_consistency": _subject, "background_consistency": _background, "temporal_flickering": _flicker,
    "motion_smoothness": _motion, "dynamic_degree": _dynamic, "imaging_quality": _imaging,
    "psnr": _paired("PSNR"), "ssim": _paired("SSIM"), "lpips": _lpips, "hf_error": _paired("HighFrequencyError"),
}


def build_metric(name: str, options: EvalOptions):
    """The metric ``name`` (one of :data:`METRICS`) ready for videos; may raise ``MetricUnavailable``."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown metric '{name}'; choose from {', '.join(METRICS)}")
    return _BUILDERS[name](options)
