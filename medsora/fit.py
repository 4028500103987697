"""``python -m medsora.fit``: train a stage, or (no arguments) run the whole CPU demo.

    python -m medsora.fit                                   # the demo: VAE -> encode cache -> diffusion -> samples
    python -m medsora.fit experiment=NAME [key=value ...]   # one stage (cfg.stage: vae | diffusion | demo)
    python -m medsora.fit experiment=NAME ckpt=last         # resume exactly where the run stopped
    python -m medsora.fit experiment=NAME --print-config    # the merged, validated config
    python -m medsora.fit --config-dir my_configs experiment=my_run   # your own config files

``experiment`` defaults to ``demo``. Runs log to ``<out_dir>/<name>/version_N/`` (TensorBoard
events, ``checkpoints/``, ``samples/``); ``ckpt=last`` continues the newest version of the run.
The work is done in :mod:`medsora.training.stage` (one stage) and :mod:`medsora.training.demo`.
"""
from __future__ import annotations

import argparse
import logging
from typing import Optional, Sequence

from medsora.config import ConfigError, add_config_dir_argument, compose, to_yaml, use_config_dirs
from medsora.training.demo import data_overrides, demo_realism, run_demo
from medsora.training.stage import StageResult, fit_stage, run_logger, stage_summary

__all__ = ["StageResult", "fit_stage", "run_demo", "demo_realism", "data_overrides", "main"]

_logger = run_logger  # the name the tests and older scripts import


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m medsora.fit",
        description="Train a MedSora stage (vae | diffusion), or run the demo when no experiment is given.",
        epilog="Examples: python -m medsora.fit | python -m medsora.fit experiment=medsora_b data.root=/data ckpt=last",
    )
    parser.add_argument("overrides", nargs="*", help="experiment=NAME (default demo) and key=value overrides")
    parser.add_argument("--print-config", action="store_true", help="print the merged config and exit")
    add_config_dir_argument(parser)
    return parser


def main(argv: Optional[Sequence[str]] = None):
    """Command-line entry point; returns the stage result (or the demo summary)."""
    args = build_parser().parse_intermixed_args(argv)
    use_config_dirs(args.config_dir)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    overrides = list(args.overrides)
    experiment = None if any(o.startswith("experiment=") for o in overrides) else "demo"
    cfg = compose(experiment, overrides)  # an unknown key or bad value fails here, before anything runs
    if args.print_config:
        print(to_yaml(cfg))
        return cfg
    if cfg.stage == "demo":
        return run_demo(overrides)
    result = fit_stage(cfg)
    print(stage_summary(result), flush=True)
    return result


if __name__ == "__main__":
    from medsora.cli import run_cli

    raise SystemExit(run_cli(main, "medsora.fit"))
