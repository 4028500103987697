"""Benchmark of the frequency-compensated causal VAE (issue 6).

1. **Speed and memory** of the tiny VAE (``configs/vae/tiny.yaml``; random weights, speed
   does not depend on them) on one clip of 65 frames at 128 and 256 px: full pass vs
   temporal chunks (``chunk_frames`` 1 and 4: 4 and 16 frames per encoder chunk, causal
   conv cache) vs chunks plus 128 px tiles (overlap 0.25). Each configuration runs in a fresh process;
   memory is the peak resident memory above the process with the model and the clip
   loaded (Linux ``VmHWM`` after a reset); times are medians of ``--repeats`` runs.
2. **Quality**: the tiny VAE trained on the demo set (experiment ``vae_demo``: the real
   ``VAEModule`` + Trainer stack) for ``--steps`` steps with ``freq_comp`` off, Haar and FFT
   — same seed, same data order — then evaluated on the held-out demo clips (val split,
   17 frames, 32 px centre crop) with ``medsora.metrics``' PSNR, SSIM and ``hf_error`` (what
   ``python -m medsora.evaluate`` reports); plus, per trained model, chunked-vs-full and
   tiled-vs-full agreement on the val clips at 64 px (tiles of 48 px, overlap 1/3).

    python benchmarks/vae.py            # 65 frames, 3 repeats, 300 steps; appends to RESULTS.md
    python benchmarks/vae.py --quick    # 17 frames, 1 repeat, 20 steps; RESULTS.md untouched
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine_info import append_results, describe_machine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# (chunk_frames, tile_size): chunks of 1 latent frame = 4 input frames, of 4 = 16 input frames
SPEED_MODES = {"full": (0, 0), "chunks of 1": (1, 0), "chunks of 4": (4, 0), "chunks of 4 + tiles": (4, 128)}
VARIANTS = {"off": ["vae.freq_comp=false"], "haar": ["vae.freq_kind=haar"], "fft": ["vae.freq_kind=fft"]}


def _tiny_cfg(extra: list[str] = ()):
    from medsora.config import compose

    return compose(overrides=["data.root=demo", "vae=tiny", "vae.lpips='off'", *extra]).vae


def _rss_kb(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def speed_worker(size: int, frames: int, mode: str, repeats: int, threads: int) -> dict:
    """One configuration in this (fresh) process: median encode/decode seconds and peak extra memory."""
    import torch

    from medsora.vae.model import FreqCompVAE

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    vae = FreqCompVAE.from_config(_tiny_cfg()).eval()
    chunk, tile = SPEED_MODES[mode]
    vae.set_chunking(chunk_frames=chunk, tile_size=tile, tile_overlap=0.25)
    x = torch.rand(1, 3, frames, size, size) * 2 - 1
    enc, dec = [], []
    with torch.no_grad():
        Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark to the current RSS
        before = _rss_kb("VmRSS")
        for _ in range(repeats):
            start = time.perf_counter()
            z = vae.encode(x).mode()
            enc.append(time.perf_counter() - start)
            start = time.perf_counter()
            y = vae.decode(z)
            dec.append(time.perf_counter() - start)
            del y
        peak = _rss_kb("VmHWM") - before
    return {"encode_s": statistics.median(enc), "decode_s": statistics.median(dec), "peak_mb": peak / 1024}


def speed_runs(frames: int) -> list[tuple[int, str, int]]:
    """(size, mode, frames): every mode at 128 and 256 px, plus full vs chunks of 1 on 17 frames at 256 px
    (memory of a full pass grows with the clip, that of a chunked pass should not)."""
    runs = [(size, mode, frames) for size in (128, 256) for mode in SPEED_MODES
            if not (SPEED_MODES[mode][1] and size <= SPEED_MODES[mode][1])]  # a tile as large as the frame: no tiling
    if frames != 17:
        runs += [(256, "full", 17), (256, "chunks of 1", 17)]
    return runs


def run_speed(args) -> list[dict]:
    rows = []
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for size, mode, frames in speed_runs(args.frames):
        cmd = [sys.executable, __file__, "--worker", json.dumps(
            {"size": size, "frames": frames, "mode": mode, "repeats": args.repeats, "threads": args.threads})]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
        row = {"size": size, "mode": mode, "frames": frames, **json.loads(out.strip().splitlines()[-1])}
        print(f"  {size} px {frames} frames {mode:20s} encode {row['encode_s']:.2f} s  decode {row['decode_s']:.2f} s  "
              f"peak +{row['peak_mb']:.0f} MB", flush=True)
        rows.append(row)
    return rows


def chunk_check() -> float:
    """max |chunked − full| over latents and frames of a random tiny VAE (21 frames, 64 px, chunks of 1, 2, 3)."""
    import torch

    from medsora.vae.model import FreqCompVAE

    torch.manual_seed(0)
    vae = FreqCompVAE.from_config(_tiny_cfg()).eval()
    with torch.no_grad():
        for p in vae.branch_parameters():
            p.normal_(0, 0.2)
        x = torch.rand(2, 3, 21, 64, 64) * 2 - 1
        z = vae.encode(x).mode()
        y = vae.decode(z)
        worst = 0.0
        for chunk in (1, 2, 3):
            vae.set_chunking(chunk_frames=chunk)
            worst = max(worst, (vae.encode(x).mode() - z).abs().max().item(), (vae.decode(z) - y).abs().max().item())
    return worst


def train_variant(name: str, args, work: Path):
    from medsora.config import compose
    from medsora.fit import fit_stage

    steps = args.steps
    cfg = compose("vae_demo", [
        f"out_dir={work}", f"name=vae_{name}", f"trainer.max_steps={steps}", f"trainer.val_check_interval={steps}",
        "trainer.limit_val_batches=1", f"trainer.checkpoint_every_n_steps={steps}", "trainer.enable_progress_bar=false",
        "vae.lpips='off'", *VARIANTS[name],
    ])
    result = fit_stage(cfg)
    return cfg, result


def evaluate(ckpt: Path, args, size: int = 32) -> dict:
    """medsora.metrics on the val split; at 64 px also chunked/tiled agreement with the full pass."""
    import torch

    from medsora.config import compose
    from medsora.training.stage import build_datamodule
    from medsora.metrics.base import to_uint8_frames
    from medsora.metrics.reconstruction import PSNR, SSIM, HighFrequencyError
    from medsora.vae import load_vae

    vae, factor = load_vae(ckpt)
    cfg = compose("vae_demo", [f"data.size={size}", "data.crop=center", "data.batch_size=1"])
    val = build_datamodule(cfg).val_dataloader()
    metrics = {"psnr": PSNR(), "ssim": SSIM(), "hf_error": HighFrequencyError()}
    agree = {"chunk_max_abs": 0.0, "tiled_psnr": []}
    with torch.no_grad():
        for batch in val:
            video = batch["video"]
            recon = vae.decode(vae.encode(video).mode())
            for real, fake in zip(to_uint8_frames(video), to_uint8_frames(recon)):
                for metric in metrics.values():
                    metric.update_pair(real, fake)
            if size >= 64:
                vae.set_chunking(chunk_frames=1)
                agree["chunk_max_abs"] = max(agree["chunk_max_abs"],
                                             (vae.decode(vae.encode(video).mode()) - recon).abs().max().item())
                vae.set_chunking(chunk_frames=1, tile_size=48, tile_overlap=1 / 3)
                tiled = vae.decode(vae.encode(video).mode()).clamp(-1, 1)
                vae.set_chunking()
                mse = (tiled - recon.clamp(-1, 1)).square().mean().item()
                agree["tiled_psnr"].append(10 * math.log10(4.0 / max(mse, 1e-12)))
    out = {k: v for m in metrics.values() for k, v in m.compute().items() if not k.endswith("pairs")}
    out["clips"] = metrics["psnr"].pairs
    out["scaling_factor"] = factor
    if size >= 64:
        out["chunk_max_abs"] = agree["chunk_max_abs"]
        out["tiled_vs_full_psnr"] = statistics.median(agree["tiled_psnr"])
    return out


def run_quality(args) -> list[dict]:
    from medsora.vae import load_vae

    rows = []
    with tempfile.TemporaryDirectory(prefix="vae-bench-") as tmp:
        for name in VARIANTS:
            _, result = train_variant(name, args, Path(tmp))
            params = sum(p.numel() for p in load_vae(result.last_ckpt)[0].parameters())
            row = {"variant": name, "params": params, "train_s_per_step": result.seconds / args.steps,
                   "train_loss": result.metrics.get("train/loss", float("nan")),
                   **evaluate(result.last_ckpt, args, 32),
                   **{f"{k}_64": v for k, v in evaluate(result.last_ckpt, args, 64).items()}}
            print(f"  {name:4s} psnr {row['psnr']:.2f}  ssim {row['ssim']:.4f}  hf_error {row['hf_error']:.3e}  "
                  f"(64 px: tiled-vs-full {row['tiled_vs_full_psnr_64']:.1f} dB)", flush=True)
            rows.append(row)
    return rows


def report(args, speed: list[dict], exact: float, quality: list[dict], header: str) -> str:
    lines = [f"## VAE: chunked/tiled encode-decode and frequency compensation (benchmarks/vae.py, {time.strftime('%Y-%m-%d')})",
             "", f"Command: `{' '.join(['python', 'benchmarks/vae.py', *sys.argv[1:]])}`", f"Machine: {header}", ""]
    if speed:
        lines += [f"**Speed and memory**: tiny VAE (configs/vae/tiny.yaml, {args.threads} thread), one clip, medians "
                  f"of {args.repeats} runs; memory = peak RSS above the loaded process (model + clip).", "",
                  "| size | frames | mode | encode ms/frame | decode ms/frame | peak memory (MB) | vs full pass |",
                  "|---|---:|---|---:|---:|---:|---|"]
        for row in speed:
            full = next(r for r in speed if (r["size"], r["frames"], r["mode"]) == (row["size"], row["frames"], "full"))
            ratio = (f"time {(row['encode_s'] + row['decode_s']) / (full['encode_s'] + full['decode_s']):.2f}×, "
                     f"memory {row['peak_mb'] / max(full['peak_mb'], 1e-9):.2f}×")
            lines.append(f"| {row['size']} | {row['frames']} | {row['mode']} | {1e3 * row['encode_s'] / row['frames']:.1f} | "
                         f"{1e3 * row['decode_s'] / row['frames']:.1f} | {row['peak_mb']:.0f} | {ratio} |")
        lines += ["", f"Chunked == full pass: max |Δ| = {exact:.1e} over latents and frames (random tiny VAE with "
                  "active branches, 21 frames, 64 px, chunks of 1, 2, 3 latent frames).", "",
                  "Reading: a chunked pass holds one chunk's activations, so its peak memory stays flat as the clip "
                  "grows while the full pass grows with it (compare the 17- and 65-frame rows). Times are sequential "
                  "runs on a shared machine: treat differences under ~1.5× as noise. On CPU, PyTorch sends batch-1 "
                  "Conv3d inputs with N·C·D·H ≤ 20480 to its im2col `slow_conv3d` kernel instead of oneDNN "
                  "(several times slower per FLOP, with a large column buffer); the tiny VAE's 8-channel full-size "
                  "layers hit that on short chunks and small tiles, which is why chunks of 1 and tiles cost time "
                  "here and save less memory than their size suggests. Full-size (128-channel) layers and GPUs "
                  "are not affected.", ""]
    if quality:
        lines += [f"**Quality**: experiment vae_demo (tiny VAE, demo set 32 px × 17 frames, batch 4, L1 + 0.1·FFL + "
                  f"KL, LPIPS off: no AlexNet weights here), {args.steps} steps each, same seed and data order; "
                  f"evaluated on the {quality[0]['clips']} held-out demo clips (val split, centre crop) with "
                  "medsora.metrics (uint8 frames; hf_error: error energy above 0.25 cycles/px, per value, [0, 1] "
                  "units; hf_error_rel: over the source's energy in that band). One seed per variant.", "",
                  "| freq_comp | params | s/step | PSNR (dB) | SSIM | hf_error | hf_error_rel | PSNR 64 px | "
                  "hf_error_rel 64 px | chunked vs full, max abs | tiled vs full (dB) |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in quality:
            lines.append(f"| {r['variant']} | {r['params'] / 1e6:.3f} M | {r['train_s_per_step']:.2f} | {r['psnr']:.2f} | "
                         f"{r['ssim']:.4f} | {r['hf_error']:.3e} | {r['hf_error_rel']:.3f} | {r['psnr_64']:.2f} | "
                         f"{r['hf_error_rel_64']:.3f} | {r['chunk_max_abs_64']:.1e} | {r['tiled_vs_full_psnr_64']:.1f} |")
        off = next(r for r in quality if r["variant"] == "off")
        lines += ["", "hf_error_rel near 1 means the band above 0.25 cycles/px is essentially not reproduced (the "
                  "error there is as large as the signal): the tiny 4-channel VAE after a few hundred CPU steps is in "
                  "that regime, so these differences say little about the full-size recipe. PSNR 64 px: the same "
                  "models on the val clips at 64 px (a size they were not trained on).", ""]
        for r in quality:
            if r["variant"] != "off":
                lines.append(f"- {r['variant']} vs off: PSNR {r['psnr'] - off['psnr']:+.2f} dB, hf_error "
                             f"{r['hf_error'] / off['hf_error']:.3f}×, SSIM {r['ssim'] - off['ssim']:+.4f}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="17 frames, 1 repeat, 20 steps; RESULTS.md untouched")
    parser.add_argument("--frames", type=int, default=65)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core box)")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="do not append to benchmarks/RESULTS.md")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(speed_worker(**json.loads(args.worker))))
        return
    if args.quick:
        args.frames, args.repeats, args.steps, args.no_write = 17, 1, 20, True
    import torch

    torch.set_num_threads(args.threads)
    header = describe_machine()
    print(f"machine: {header}", flush=True)
    speed, exact, quality = [], float("nan"), []
    if not args.skip_speed:
        print("speed and memory:", flush=True)
        speed = run_speed(args)
        exact = chunk_check()
    if not args.skip_quality:
        print("quality:", flush=True)
        quality = run_quality(args)
    section = report(args, speed, exact, quality, header)
    print("\n" + section)
    if not args.no_write:
        print(f"appended to {append_results(section)}")


if __name__ == "__main__":
    main()
