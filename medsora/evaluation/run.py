"""One evaluation: read the sets (optionally under a protocol), feed every metric, compute values and intervals.

The result is the report dict that ``python -m medsora.evaluate`` writes as JSON and
renders as markdown (:func:`medsora.metrics.report.markdown_report`).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from tqdm import tqdm

from medsora.evaluation.protocol import Protocol, clip_video
from medsora.metrics.base import PairedMetric, PairingError, PerVideoMetric
from medsora.metrics.bootstrap import Resamplable, bootstrap_interval
from medsora.metrics.registry import DISTRIBUTION, METRICS, PAIRED, EvalOptions, build_metric
from medsora.metrics.video_sets import list_videos, pair_videos
from medsora.metrics.weights import MetricUnavailable

__all__ = ["EvaluationError", "TooFewVideos", "evaluate"]


class EvaluationError(RuntimeError):
    """Raised under ``strict`` when a metric cannot be computed or a video cannot be read."""


class TooFewVideos(EvaluationError):
    """A set holds fewer usable videos than the protocol asks for (``--allow-fewer`` labels the result instead)."""


class _Run:
    """Bookkeeping shared by the passes over the sets: skips, unreadable and too-short videos, strictness."""

    def __init__(self, strict: bool, progress: bool, protocol: Protocol | None) -> None:
        self.strict = strict
        self.progress = progress
        self.protocol = protocol
        self.skipped: dict[str, str] = {}
        self.unreadable: list[str] = []
        self.too_short: list[str] = []

    def skip(self, name: str, reason: str) -> None:
        if self.strict:
            raise EvaluationError(f"{name}: {reason}")
        self.skipped[name] = reason
        print(f"[medsora.evaluate] skipping {name}: {reason}", file=sys.stderr)

    def read(self, path: Path):
        """``(frames uint8 T×H×W×3, meta)``, or None (recorded) for an unreadable video unless strict."""
        from medsora.data.sources import read_video
        from medsora.data.sources.formats import UnreadableVideo

        try:
            frames, meta = read_video(path)
            return torch.from_numpy(frames).contiguous(), meta
        except UnreadableVideo as err:
            if self.strict:
                raise EvaluationError(f"unreadable video: {err}") from err
            if str(err) not in self.unreadable:  # a video may be read again for the reconstruction pairs
                self.unreadable.append(str(err))
                print(f"[medsora.evaluate] skipping unreadable video {err}", file=sys.stderr)
            return None

    def videos(self, paths: Sequence[Path], desc: str, limit: int | None = None) -> Iterator[tuple]:
        """``(frames, meta)`` of readable videos (the protocol's clips), at most ``limit``, with a progress bar."""
        bar = tqdm(total=limit or len(paths), desc=desc, disable=not self.progress, file=sys.stderr)
        used = 0
        for path in paths:
            if limit is not None and used >= limit:
                break
            video = self.read(path)
            if video is None:
                continue
            frames, meta = video
            if self.protocol is not None:
                frames = clip_video(frames, self.protocol.clip)
                if frames is None:
                    self.too_short.append(str(path))
                    continue
            used += 1
            bar.update(1)
            yield frames, meta
        bar.close()


def _draw(videos: list[Path], protocol: Protocol | None, num: int | None) -> list[Path]:
    """The order videos are taken in: the protocol's seeded permutation (or name order), cut at ``num``."""
    if protocol is None:
        return videos[:num] if num is not None else videos
    if protocol.selection == "random":
        return [videos[i] for i in np.random.default_rng(protocol.seed).permutation(len(videos))]
    return videos  # name order; the pass stops after num usable videos


def _sampling_check(fake: Path, protocol: Protocol) -> dict:
    """Compare the generated set's ``samples.json`` with the protocol's sampler settings."""
    want = {k: v for k, v in (("sampler", protocol.sampling.sampler), ("steps", protocol.sampling.steps))
            if v is not None}
    if not want:
        return {"checked": False, "reason": "the protocol pins no sampler"}
    record = fake / "samples.json" if fake.is_dir() else None
    if record is None or not record.is_file():
        return {"checked": False, "wanted": want, "reason": f"no samples.json in {fake}: the sampler is not verified"}
    found = json.loads(record.read_text(encoding="utf-8"))
    wrong = {k: found.get(k) for k, v in want.items() if found.get(k) != v}
    if wrong:
        raise EvaluationError(
            f"protocol '{protocol.name}' needs samples made with {want}; {record} says {wrong}. Resample with "
            f"python -m medsora.sample --sampler {want.get('sampler', '…')} --steps {want.get('steps', '…')}")
    return {"checked": True, "wanted": want, "samples_json": str(record)}


def evaluate(fake: str | Path, real: str | Path | None = None, metrics: Sequence[str] = METRICS,
             options: EvalOptions | None = None, num: int | None = None, real_split: str | None = None,
             dims_on_real: bool = False, strict: bool = False, progress: bool = True,
             protocol: Protocol | None = None, allow_fewer: bool = False, bootstrap: int | None = None,
             pair_start: int | None = None, pair_stride: int | None = None) -> dict:
    """Compute ``metrics`` for the generated set ``fake`` against the real set ``real``; returns the report dict.

    With a ``protocol`` its video count, clip, split, metrics and bootstrap settings replace ``num``,
    ``real_split`` and ``metrics``; fewer usable videos than it asks raise :class:`TooFewVideos` unless
    ``allow_fewer`` (then the report's label says so and never carries the protocol's name alone).
    ``bootstrap`` = replicates of the intervals (0: none; default: the protocol's, else 200).
    ``pair_start``/``pair_stride``: the source frames of clip reconstructions (see
    :func:`medsora.metrics.base.align_pair`).
    """
    options = options or EvalOptions()
    options.shared.clear()  # features shared by FID and KID belong to this run only
    if protocol is not None:
        metrics, real_split, num = list(protocol.metrics), protocol.real_split, protocol.num_videos
        options.fvd_frames = options.fid_frames = protocol.clip.frames
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {', '.join(METRICS)}")
    run = _Run(strict, progress, protocol)
    sampling = _sampling_check(Path(fake), protocol) if protocol is not None else None
    fake_root, fake_videos = list_videos(fake)
    real_root, real_videos = list_videos(real, real_split) if real is not None else (None, [])
    fake_order, real_order = _draw(fake_videos, protocol, num), _draw(real_videos, protocol, num)

    built = {}
    for name in metrics:
        if real is None and (name in PAIRED or (name in DISTRIBUTION and name != "is")):
            run.skip(name, "needs the real set: pass --real DIR_OR_MANIFEST")
            continue
        try:
            built[name] = build_metric(name, options)
        except MetricUnavailable as err:
            run.skip(name, str(err))

    on_sets = {n: m for n, m in built.items() if not isinstance(m, PairedMetric)}
    paired = {n: m for n, m in built.items() if isinstance(m, PairedMetric)}
    used = {"fake": 0, "real": 0}
    read = set()  # the sets the metrics needed (a protocol's count applies to those)
    if on_sets:
        read.add("fake")
        for frames, meta in run.videos(fake_order, "generated videos", num):
            used["fake"] += 1
            for metric in on_sets.values():
                metric.update(frames, meta, real=False)
        wants_real = [m for m in on_sets.values()
                      if (isinstance(m, PerVideoMetric) and dims_on_real) or getattr(m, "uses_real", False)]
        if wants_real:
            read.add("real")
            for frames, meta in run.videos(real_order, "real videos", num):
                used["real"] += 1
                for metric in wants_real:
                    metric.update(frames, meta, real=True)
    pairs, unpaired = _pairs(run, paired, built, real_root, real_videos[:num], fake_root, fake_videos[:num],
                             pair_start, pair_stride)

    label = None
    if protocol is not None:
        short = {k: v for k, v in used.items() if v < protocol.num_videos and k in read}
        if short:
            what = ", ".join(f"{v} {k}" for k, v in short.items())
            if not allow_fewer:
                raise TooFewVideos(
                    f"protocol '{protocol.name}' needs {protocol.num_videos} usable videos per set, found {what} "
                    f"({len(run.unreadable)} unreadable, {len(run.too_short)} shorter than "
                    f"{protocol.clip.start + (protocol.clip.frames - 1) * protocol.clip.stride + 1} frames); generate "
                    f"or add videos, or pass --allow-fewer for a result labelled as not following the protocol")
            label = f"{protocol.name}-incomplete ({what} of {protocol.num_videos} videos)"
        else:
            label = protocol.name

    replicates = bootstrap if bootstrap is not None else (protocol.bootstrap.replicates if protocol else 200)
    confidence = protocol.bootstrap.confidence if protocol else 0.95
    seed = protocol.bootstrap.seed if protocol else 0
    results = {}
    for name, metric in built.items():
        try:
            values = metric.compute()
        except ValueError as err:
            run.skip(name, str(err))
            continue
        value = values.pop(name)
        interval = None
        if replicates > 0 and isinstance(metric, Resamplable):
            interval = bootstrap_interval(metric, value, replicates, confidence, seed, progress, f"bootstrap {name}")
        results[name] = {"value": value, "real_value": values.pop(f"{name}_real", None), "interval": interval,
                         "details": values, "higher_is_better": metric.higher_is_better, "protocol": metric.protocol}
    report = {
        "fake": str(fake), "real": None if real is None else str(real), "num_fake": used["fake"] or len(fake_videos),
        "num_real": used["real"] or len(real_videos), "num_pairs": len(pairs), "device": options.device,
        "metrics": results, "skipped": run.skipped, "unreadable": run.unreadable, "unpaired": unpaired,
    }
    if protocol is not None:
        import dataclasses

        report["protocol"] = {"label": label, "name": protocol.name, "complete": label == protocol.name,
                              "requested": dataclasses.asdict(protocol),
                              "used": {"num_fake": used["fake"], "num_real": used["real"],
                                       "too_short": run.too_short, "unreadable": len(run.unreadable),
                                       "sampling": sampling}}
    return report


def _pairs(run: _Run, paired: dict, built: dict, real_root, real_videos, fake_root, fake_videos,
           start: int | None, stride: int | None) -> tuple[list, list]:
    """Feed the reconstruction metrics (source, reconstruction) pairs; a pair that cannot be aligned is refused."""
    if not paired:
        return [], []
    try:
        pairs = pair_videos(real_root, real_videos, fake_root, fake_videos)
    except ValueError as err:
        for name in paired:
            run.skip(name, str(err))
            del built[name]
        return [], []
    unpaired = []
    for real_path, fake_path in tqdm(pairs, desc="reconstruction pairs", disable=not run.progress, file=sys.stderr):
        source, reconstruction = run.read(real_path), run.read(fake_path)
        if source is None or reconstruction is None:
            continue
        try:
            for metric in paired.values():
                metric.update_pair(source[0], reconstruction[0], start, stride)
        except PairingError as err:
            if run.strict:
                raise EvaluationError(f"{fake_path}: {err}") from err
            unpaired.append(f"{fake_path}: {err}")
            print(f"[medsora.evaluate] not compared: {fake_path}: {err}", file=sys.stderr)
    return pairs, unpaired
