"""Parameter and FLOP table of the backbone presets (for the README).

Parameters are counted on the meta device; forward FLOPs are counted by
``torch.utils.flop_counter.FlopCounterMode`` on a 1- and a 2-layer cut of each preset
and extended to its depth (layers cost the same). The figures are exact for the
implementation as it is: they include matrix
multiplications, convolutions and attention (the SSD scan runs as batched matmuls
and is counted, padding of short sequences to the chunk size included), not
element-wise operations. A multiply-add counts as 2 FLOPs.

    python benchmarks/presets.py            # appends the table to benchmarks/RESULTS.md
    python benchmarks/presets.py --quick    # tiny and medsora_s only, nothing written
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from machine_info import append_results

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from medsora.backbone import PRESETS, preset_config  # noqa: E402
from medsora.backbone.cost import count_parameters, forward_flops as clip_flops  # noqa: E402

LATENT_CHANNELS = 16  # CogVideoX VAE latent
# (label, latent T×H×W): MedSora's clips (16 frames, 128×128) and a 256×256 variant, after 4×8×8 compression.
SIZES = (("16×128² clip", (4, 16, 16)), ("16×256² clip", (4, 32, 32)))


def parameters(name: str) -> int:
    """Parameter count of preset ``name``, built on the meta device (nothing allocated)."""
    return count_parameters(preset_config(name), LATENT_CHANNELS)


def forward_flops(name: str, latent):
    """(forward FLOPs, FLOPs per sub-block kind) of preset ``name`` on one latent clip."""
    return clip_flops(preset_config(name), LATENT_CHANNELS, latent)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny and medsora_s only, nothing written")
    parser.add_argument("--results", default=str(Path(__file__).with_name("RESULTS.md")))
    args = parser.parse_args(argv)
    names = PRESETS[:2] if args.quick else PRESETS

    header = "| preset | depth | params (M) | " + " | ".join(f"GFLOPs fwd, {label} ({t}×{h // 2}×{w // 2} tokens)"
                                                         for label, (t, h, w) in SIZES) + " | FLOP share (first size) |"
    lines = [header, "|---|---:|---:|" + "---:|" * len(SIZES) + "---|"]
    for name in names:
        cells, share = [], ""
        params = parameters(name)
        for k, (_, latent) in enumerate(SIZES):
            flops, by_kind = forward_flops(name, latent)
            cells.append(f"{flops / 1e9:.1f}")
            if k == 0:
                share = ", ".join(f"{kind} {100 * f / flops:.0f}%" for kind, f in by_kind.items())
        depth = preset_config(name).depth
        lines.append(f"| {name} | {depth} | {params / 1e6:.2f} | " + " | ".join(cells) + f" | {share} |")
    table = "\n".join(lines)
    command = "python benchmarks/presets.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = "\n".join([
        f"## Backbone presets: parameters and forward FLOPs ({time.strftime('%Y-%m-%d')})",
        "",
        f"Command: `{command.strip()}`  ",
        f"Machine: counted, not timed (machine-independent), torch {torch.__version__}, "
        f"{os.cpu_count()} cores, shared, noisy machine  ",
        f"Input: batch 1, {LATENT_CHANNELS} latent channels, learned sigma, no alignment projector. FLOPs = "
        "matmul/conv/attention FLOPs counted by FlopCounterMode (multiply-add = 2).",
        "",
        table,
        "",
    ])
    print(report)
    if not args.quick:
        append_results(report, args.results)


if __name__ == "__main__":
    main()
