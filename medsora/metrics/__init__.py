"""Evaluation metrics: FVD, CD-FVD, FID/KID/IS, VBench-style video dimensions, reconstruction metrics; bootstrap
intervals by video (:mod:`medsora.metrics.bootstrap`).

The command line is ``python -m medsora.evaluate``; the pieces are importable for use in
training callbacks (videos as uint8 T×H×W×3, see :func:`to_uint8_frames` for model output).
"""
from medsora.metrics.base import (DistributionMetric, PairedMetric, PerVideoMetric, VideoScore, align_pair,
                                  to_uint8_frames)
from medsora.metrics.frechet import GaussianAccumulator, frechet_distance, gaussian_stats, sqrtm_psd
from medsora.metrics.registry import METRICS, EvalOptions, build_metric
from medsora.metrics.weights import WEIGHTS, MetricUnavailable, MissingPackage, MissingWeights, resolve_weights

__all__ = [
    "METRICS", "WEIGHTS", "DistributionMetric", "EvalOptions", "GaussianAccumulator", "MetricUnavailable",
    "MissingPackage", "MissingWeights", "PairedMetric", "PerVideoMetric", "VideoScore", "align_pair", "build_metric",
    "frechet_distance", "gaussian_stats", "resolve_weights", "sqrtm_psd", "to_uint8_frames",
]
