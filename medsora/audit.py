"""``python -m medsora.audit``: does the model copy its training clips? A memorisation audit and privacy filter.

    python -m medsora.audit --train /data/colonoscopic --samples samples/ --out audit/
    python -m medsora.audit --train /cache/colon --samples samples/ --out audit/ --features vae --vae vae.ckpt
    python -m medsora.audit --train /data/echo --samples samples/ --out audit/ --encoder /models/dino --filter release/

For every generated clip, its nearest training clips in a feature space (``--encoder``: a local
self-supervised encoder; ``--vae``: the project's VAE latents; otherwise weight-free normalised
thumbnails); a sample nearer than the 1st percentile of real held-out clips' distances to the
training set is flagged. Writes ``audit.csv`` (per sample), ``audit.json`` / ``audit.md``
(fraction flagged with a bootstrap interval), ``closest_pairs.png``; ``--filter DIR`` copies only the
unflagged samples. The work is done in :mod:`medsora.memorisation`.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m medsora.audit", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", required=True, help="the training data: a data folder (manifest or scan) or an "
                                                  "encode cache (its train split; val = held out)")
    p.add_argument("--samples", required=True, help="folder of generated videos")
    p.add_argument("--out", required=True, help="output folder (features are cached under OUT/features)")
    p.add_argument("--filter", metavar="OUT_DIR", help="copy only the unflagged samples here")
    p.add_argument("--features", default="auto", choices=("auto", "pixels", "vae", "encoder"),
                   help="feature space (auto: --encoder if given, else --vae if given, else pixels)")
    p.add_argument("--vae", help="the project's VAE checkpoint (for an encode cache: the one that made it)")
    p.add_argument("--encoder", help="a local transformers folder: VideoMAE, DINO, CLIP vision…")
    p.add_argument("--held-out", help="a folder of real videos the model never saw (default: the training set's "
                                      "val/test split)")
    p.add_argument("--quantile", type=float, default=0.01, help="threshold quantile of held-out distances (0.01)")
    p.add_argument("--k", type=int, default=5, help="neighbours listed per sample (5)")
    p.add_argument("--clip-frames", type=int, default=17, help="frames of a training clip (data folders; 17)")
    p.add_argument("--clip-stride", type=int, default=1, help="frame stride of a training clip (data folders; 1)")
    p.add_argument("--clips-per-video", type=int, default=4, help="training windows per video (data folders; 4)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from medsora.memorisation.report import audit_markdown
    from medsora.memorisation.run import AuditSettings, run_audit

    settings = AuditSettings(features=args.features, vae=args.vae, encoder=args.encoder, held_out=args.held_out,
                             quantile=args.quantile, k=args.k, clip_frames=args.clip_frames,
                             clip_stride=args.clip_stride, clips_per_video=args.clips_per_video,
                             batch_size=args.batch_size, seed=args.seed, device=args.device,
                             progress=not args.no_progress)
    try:
        summary = run_audit(args.train, args.samples, args.out, settings, args.filter)
    except (ValueError, FileNotFoundError) as err:
        print(f"medsora.audit: error: {err}", file=sys.stderr)
        return 2
    print(audit_markdown(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
