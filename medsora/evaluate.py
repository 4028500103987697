"""``python -m medsora.evaluate``: FVD, FID/IS, VBench-style dimensions and reconstruction metrics.

    python -m medsora.evaluate --fake samples/ --real data/manifest.jsonl --real-split test \\
        --metrics fvd,fid,is,temporal_flickering,dynamic_degree --weights-dir ~/weights --out eval.json

Writes a JSON report (``--out``) and a markdown table (beside it as ``.md``, and on
stdout). Every metric resamples videos as its reference implementation does and the
report says how. A metric whose pretrained weights (or optional package) are missing
is skipped with a message naming the file and how to obtain it, the others are still
computed; ``--strict`` turns that, and any unreadable video, into an error.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Sequence

import torch
from tqdm import tqdm

from medsora.metrics.base import PairedMetric, PerVideoMetric
from medsora.metrics.registry import DISTRIBUTION, METRICS, PAIRED, PER_VIDEO, EvalOptions, build_metric
from medsora.metrics.report import markdown_report
from medsora.metrics.video_sets import list_videos, pair_videos
from medsora.metrics.weights import WEIGHTS, MetricUnavailable

__all__ = ["EvaluationError", "evaluate", "main"]


class EvaluationError(RuntimeError):
    """Raised under ``strict`` when a metric cannot be computed or a video cannot be read."""


def _read(path: Path):
    from medsora.data.sources import read_video

    frames, meta = read_video(path)
    return torch.from_numpy(frames).contiguous(), meta


class _Run:
    """Bookkeeping shared by the passes over the sets: skips, unreadable videos, strictness."""

    def __init__(self, strict: bool, progress: bool) -> None:
        self.strict = strict
        self.progress = progress
        self.skipped: dict[str, str] = {}
        self.unreadable: list[str] = []

    def skip(self, name: str, reason: str) -> None:
        if self.strict:
            raise EvaluationError(f"{name}: {reason}")
        self.skipped[name] = reason
        print(f"[medsora.evaluate] skipping {name}: {reason}", file=sys.stderr)

    def read(self, path: Path):
        """``(frames uint8 T×H×W×3, meta)``, or None (recorded) for an unreadable video unless strict."""
        from medsora.data.sources.formats import UnreadableVideo

        try:
            return _read(path)
        except UnreadableVideo as err:
            if self.strict:
                raise EvaluationError(f"unreadable video: {err}") from err
            if str(err) in self.unreadable:  # a video read again for the reconstruction pairs
                return None
            self.unreadable.append(str(err))
            print(f"[medsora.evaluate] skipping unreadable video {err}", file=sys.stderr)
            return None

    def videos(self, paths: Sequence[Path], desc: str):
        """Yield ``(frames, meta)`` for each readable video, with a progress bar."""
        for path in tqdm(paths, desc=desc, disable=not self.progress, file=sys.stderr):
            video = self.read(path)
            if video is not None:
                yield video


def evaluate(fake: str | Path, real: str | Path | None = None, metrics: Sequence[str] = METRICS,
             options: EvalOptions | None = None, num: int | None = None, real_split: str | None = None,
             dims_on_real: bool = False, strict: bool = False, progress: bool = True) -> dict:
    """Compute ``metrics`` for the generated set ``fake`` against the real set ``real``; returns the report dict."""
    options = options or EvalOptions()
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {', '.join(METRICS)}")
    run = _Run(strict, progress)
    fake_root, fake_videos = list_videos(fake)
    real_root, real_videos = list_videos(real, real_split) if real is not None else (None, [])
    fake_videos, real_videos = fake_videos[:num], real_videos[:num]

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
    if on_sets:
        for frames, meta in run.videos(fake_videos, "generated videos"):
            for metric in on_sets.values():
                metric.update(frames, meta, real=False)
        wants_real = [m for m in on_sets.values()
                      if (isinstance(m, PerVideoMetric) and dims_on_real) or getattr(m, "uses_real", False)]
        if wants_real:
            for frames, meta in run.videos(real_videos, "real videos"):
                for metric in wants_real:
                    metric.update(frames, meta, real=True)
    pairs = []
    if paired:
        try:
            pairs = pair_videos(real_root, real_videos, fake_root, fake_videos)
        except ValueError as err:
            for name in paired:
                run.skip(name, str(err))
                del built[name]
        for real_path, fake_path in tqdm(pairs, desc="reconstruction pairs", disable=not progress, file=sys.stderr):
            source, reconstruction = run.read(real_path), run.read(fake_path)
            if source is not None and reconstruction is not None:
                for metric in paired.values():
                    metric.update_pair(source[0], reconstruction[0])

    results = {}
    for name, metric in built.items():
        try:
            values = metric.compute()
        except ValueError as err:
            run.skip(name, str(err))
            continue
        results[name] = {"value": values.pop(name), "real_value": values.pop(f"{name}_real", None),
                         "details": values, "higher_is_better": metric.higher_is_better, "protocol": metric.protocol}
    return {
        "fake": str(fake), "real": None if real is None else str(real), "num_fake": len(fake_videos),
        "num_real": len(real_videos), "num_pairs": len(pairs), "device": options.device, "metrics": results,
        "skipped": run.skipped, "unreadable": run.unreadable,
    }


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m medsora.evaluate", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fake", required=True, help="folder of generated (or reconstructed) videos")
    p.add_argument("--real", help="folder of real videos or a manifest .jsonl")
    p.add_argument("--real-split", help="only manifest rows with this split (e.g. test)")
    p.add_argument("--metrics", default=",".join(METRICS),
                   help=f"comma-separated subset of: {', '.join(METRICS)} (default: all)")
    p.add_argument("--num", type=int, help="use only the first N videos of each set (sorted by name)")
    p.add_argument("--out", help="write the JSON report here, and the markdown table beside it (.md)")
    p.add_argument("--strict", action="store_true", help="fail instead of skipping a metric or an unreadable video")
    p.add_argument("--dims-on-real", action="store_true",
                   help=f"also score the real set on {', '.join(PER_VIDEO)} as a reference")
    p.add_argument("--weights-dir", help="folder holding the pretrained networks under their standard names "
                                         "(default $MEDSORA_WEIGHTS or $MEDSORA_CACHE/weights)")
    for key, spec in WEIGHTS.items():
        p.add_argument(f"--{key}", metavar="PATH", help=f"{spec.what} (default <weights-dir>/{spec.name})")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--fvd-frames", type=int, default=16, help="frames per FVD clip (StyleGAN-V: 16 or 128)")
    p.add_argument("--fid-frames", type=int, default=16, help="leading frames of each video used as FID/IS images")
    p.add_argument("--raft-iters", type=int, default=20, help="RAFT refinement iterations (VBench: 20)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    options = EvalOptions(weights={k: getattr(args, k) for k in WEIGHTS if getattr(args, k)},
                          weights_dir=args.weights_dir, device=args.device, batch_size=args.batch_size,
                          fvd_frames=args.fvd_frames, fid_frames=args.fid_frames, raft_iters=args.raft_iters)
    if args.out and Path(args.out).suffix == ".md":
        print("medsora.evaluate: error: --out names the JSON report (the markdown goes beside it as .md)",
              file=sys.stderr)
        return 2
    try:
        report = evaluate(args.fake, args.real, metrics, options, num=args.num, real_split=args.real_split,
                          dims_on_real=args.dims_on_real, strict=args.strict, progress=not args.no_progress)
    except (EvaluationError, ValueError, FileNotFoundError) as err:
        print(f"medsora.evaluate: error: {err}", file=sys.stderr)
        return 2
    table = markdown_report(report)
    print(table)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(_json_safe(report), indent=2) + "\n", encoding="utf-8")
        out.with_suffix(".md").write_text(table + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    from medsora.cli import run_cli

    raise SystemExit(run_cli(main, "medsora.evaluate"))
