"""``python -m medsora.export --ckpt RUN/checkpoints/last.ckpt --out DIR [--no-ema] [--force] [--eval JSON]``."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m medsora.export",
                                description="Write a trained MedSora run as a diffusers-style folder (safetensors + JSON).")
    p.add_argument("--ckpt", required=True, help="a diffusion- or VAE-stage checkpoint (.ckpt)")
    p.add_argument("--out", required=True, help="the folder to write (must be empty unless --force)")
    ema = p.add_mutually_exclusive_group()
    ema.add_argument("--ema", dest="ema", action="store_true", default=True, help="export the EMA weights (default)")
    ema.add_argument("--no-ema", dest="ema", action="store_false", help="export the raw (non-averaged) weights")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out")
    p.add_argument("--eval", default=None, help="an evaluation JSON whose metrics go into the model card")
    p.add_argument("--vae", default=None, help="VAE checkpoint, when the run's vae.ckpt moved")
    return p


def main(argv: Optional[Sequence[str]] = None) -> Path:
    args = build_parser().parse_args(argv)
    from medsora.export.writer import export_checkpoint

    out = export_checkpoint(args.ckpt, args.out, ema=args.ema, force=args.force, eval_json=args.eval, vae=args.vae)
    print(f"exported {args.ckpt} -> {Path(out).resolve()} ({', '.join(sorted(p.name for p in Path(out).iterdir()))})")
    return out


if __name__ == "__main__":
    from medsora.cli import run_cli

    raise SystemExit(run_cli(main, "medsora.export"))
