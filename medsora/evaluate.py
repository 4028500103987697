"""``python -m medsora.evaluate``: FVD, CD-FVD, FID/KID/IS, VBench-style dimensions and reconstruction metrics
with bootstrap intervals, under pinned protocols; downstream utility of generated data.

    python -m medsora.evaluate --fake samples/ --real data/manifest.jsonl --real-split test \\
        --metrics fvd,fid,kid,temporal_flickering,dynamic_degree --weights-dir ~/weights --out eval.json
    python -m medsora.evaluate --protocol stylegan_v --fake samples/ --real data/ --out eval.json
    python -m medsora.evaluate --utility modality --fake samples/ --real data/ --out utility.json

Writes a JSON report (``--out``) and a markdown table (beside it as ``.md``, and on
stdout). Every metric resamples videos as its reference implementation does and the
report says how. A metric whose pretrained weights (or optional package) are missing
is skipped with a message naming the file and how to obtain it, the others are still
computed; ``--strict`` turns that, and any unreadable video, into an error. The work is
done in :mod:`medsora.evaluation`.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Sequence

import torch

from medsora.config.loader import ConfigError, add_config_dir_argument, use_config_dirs
from medsora.evaluation.run import EvaluationError, TooFewVideos, evaluate
from medsora.metrics.registry import METRICS, PER_VIDEO, EvalOptions
from medsora.metrics.report import markdown_report
from medsora.metrics.weights import WEIGHTS

__all__ = ["EvaluationError", "TooFewVideos", "evaluate", "main"]


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
    p.add_argument("--protocol", help="a protocol eval/NAME.yaml on the config search path (shipped: stylegan_v, "
                                      "endora, medsora) or a YAML path: pins videos, frames, stride, resize/crop, "
                                      "split, seed, metrics")
    add_config_dir_argument(p)
    p.add_argument("--allow-fewer", action="store_true",
                   help="with --protocol: fewer videos than it asks gives a result labelled as incomplete, not an "
                        "error")
    p.add_argument("--bootstrap", type=int, help="bootstrap replicates of the intervals (0: none; default: the "
                                                 "protocol's, else 200; FID's, over thousands of frames, is the costly one)")
    p.add_argument("--pair-start", type=int, help="reconstruction metrics: the source frame of a clip's first frame")
    p.add_argument("--pair-stride", type=int, help="reconstruction metrics: the clip's frame stride in the source")
    p.add_argument("--utility", metavar="LABEL",
                   help="downstream utility instead of metrics: train a small video classifier on --fake labelled by "
                        "LABEL (modality or a manifest column; samples.json labels) and test it on real held-out "
                        "clips of --real, next to the same trained on real clips")
    p.add_argument("--utility-steps", type=int, default=300, help="training steps of each utility classifier")
    p.add_argument("--seed", type=int, default=0, help="seed of the utility classifiers")
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


def _utility(args) -> dict:
    from medsora.evaluation.utility.run import UtilitySettings, utility_report

    if not args.real:
        raise ValueError("--utility needs --real (the real set: its train split trains the real-data model, its "
                         "held-out split tests both)")
    return utility_report(args.fake, args.real, args.utility,
                          UtilitySettings(steps=args.utility_steps, seed=args.seed, device=args.device),
                          progress=not args.no_progress)


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
        use_config_dirs(args.config_dir)
        if args.utility:
            from medsora.evaluation.utility.report import utility_markdown

            report = _utility(args)
            table = utility_markdown(report)
        else:
            protocol = None
            if args.protocol:
                from medsora.evaluation.protocol import load_protocol

                protocol = load_protocol(args.protocol)
            report = evaluate(args.fake, args.real, metrics, options, num=args.num, real_split=args.real_split,
                              dims_on_real=args.dims_on_real, strict=args.strict, progress=not args.no_progress,
                              protocol=protocol, allow_fewer=args.allow_fewer, bootstrap=args.bootstrap,
                              pair_start=args.pair_start, pair_stride=args.pair_stride)
            table = markdown_report(report)
    except (EvaluationError, ConfigError, ValueError, FileNotFoundError) as err:
        print(f"medsora.evaluate: error: {err}", file=sys.stderr)
        return 2
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
