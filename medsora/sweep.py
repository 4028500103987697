"""``python -m medsora.sweep configs/sweep/NAME.yaml`` (or just ``NAME``) — run an ablation grid, end in a
table and a plot.

Options:
    --config-dir DIR your own config folder (<group>/<name>.yaml), searched first; repeatable
    --out DIR        where variants and results go (default lightning_logs/sweeps/NAME)
    --devices 0,1    run one variant per GPU at a time (CUDA_VISIBLE_DEVICES per process)
    --jobs N         CPU: run N variants at a time (default 1)
    --validate-only  compose every variant's config and stop
    key=value ...    extra overrides applied to every variant
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medsora.config import ConfigError, add_config_dir_argument, use_config_dirs
from medsora.sweeps.runner import run_sweep
from medsora.sweeps.spec import load_sweep, validate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m medsora.sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", help="sweep file (configs/sweep/demo.yaml) or a sweep name (demo)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides for every variant")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--devices", default="", help="comma-separated GPU ids")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--validate-only", action="store_true")
    add_config_dir_argument(parser)
    args = parser.parse_intermixed_args(argv)
    try:
        use_config_dirs(args.config_dir)
        spec = load_sweep(args.sweep)
        if args.validate_only:
            validate(spec, args.overrides)
            print(f"sweep '{spec.name}': {len(spec.variants)} variants valid: "
                  + ", ".join(v.name for v in spec.variants))
            return 0
        out = args.out or Path("lightning_logs") / "sweeps" / spec.name
        devices = [d for d in args.devices.split(",") if d]
        rows = run_sweep(spec, out, devices=devices, jobs=args.jobs, extra=args.overrides)
    except ConfigError as err:
        print(f"medsora.sweep: error: {err}", file=sys.stderr)
        return 2
    print((out / "results.md").read_text())
    print(f"results: {out / 'results.csv'}, {out / 'results.md'}, {out / 'loss_curves.png'}")
    failed = [r["variant"] for r in rows if not str(r.get("status", "")).startswith("done")]
    if failed:
        print(f"failed variants: {', '.join(failed)} (their train.log says why)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    from medsora.cli import run_cli

    raise SystemExit(run_cli(main, "medsora.sweep"))
