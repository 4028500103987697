"""Long videos from a 17-frame model: time and peak memory per frame, and the seams, at 17 → 65 → 129 frames.

    python benchmarks/long_video.py --ckpt /tmp/demo/lightning_logs/demo_diffusion/version_0/checkpoints/last.ckpt
    python benchmarks/long_video.py --ckpt RUN/last.ckpt --frames 17 65 129 --num 4 --repeats 3 --overlap 1 --device cuda

For each diffusion checkpoint and each frame count, ``--num`` videos (seeds 0..num-1, the model's sampler,
steps, guidance and conditions) are sampled with ``DiffusionModule.generate(num_frames=N)`` exactly as
``python -m medsora.sample --frames N`` does, ``--repeats`` times; the table gives the median wall and
process-CPU seconds per video frame, and the peak memory of the call above what was resident before it:
on the CPU the peak resident set size (``VmHWM`` of /proc/self/status, reset through /proc/self/clear_refs
before each call, after glibc's ``malloc_trim``, with ``MALLOC_MMAP_THRESHOLD_=65536`` so that freed tensors
leave the resident set): an RSS delta, not tracemalloc, which does not see torch's allocations; on CUDA ``torch.cuda.max_memory_allocated`` above the allocation before the call. The output itself (B×3×N×H×W
float32) is part of that peak and grows with N; its size is printed beside it. For contrast, the same
129-frame latents decoded in one full VAE pass (no windows) give the memory the chunked decode avoids.

Seams: the mean absolute difference between consecutive decoded frames at the window seams against the
transitions inside windows (``ratio``; goal ≤ 1.5), and against the transitions between latent frames
inside windows alone (``ratio_same_phase``: the causal VAE decodes a latent frame's four video frames
together, so those transitions are the like-for-like comparison), over all videos (medsora.metrics.seams).
Appends to benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from machine_info import append_results, describe_machine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _status(key: str) -> int:
    """A /proc/self/status field in bytes (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


class PeakMemory:
    """Peak memory of a block above what was in use before it: RSS on the CPU, the allocator on CUDA."""

    def __init__(self, device):
        self.device = device

    def __enter__(self):
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.before = torch.cuda.memory_allocated()
        else:
            import ctypes
            import gc

            gc.collect()
            try:  # hand freed heap pages back, so that a later peak is not hidden inside memory kept from earlier
                ctypes.CDLL("libc.so.6").malloc_trim(0)
            except OSError:
                pass
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self.before = _status("VmRSS")
        return self

    def __exit__(self, *exc):
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.before
        else:
            self.peak = _status("VmHWM") - self.before


def run(args) -> tuple[list[dict], list[dict]]:
    import torch

    from medsora.diffusion.extend import extension_mode, plan_windows, seam_frames
    from medsora.metrics.seams import frame_differences, seam_statistics
    from medsora.sample import _device
    from medsora.training.diffusion_module import DiffusionModule
    from medsora.vae.select import temporal_stride

    device = _device(args.device)
    rows, decode_rows = [], []
    for path in args.ckpt:
        module = DiffusionModule.from_checkpoint(path, overrides={"vae": {"ckpt": args.vae}} if args.vae else None)
        module = module.to(device).eval()
        window, stride = module.latent_grid()[0], temporal_stride(module.cfg.vae)
        mode = extension_mode(bool(module.cfg.cond.first_frame), args.mode)
        parts = Path(path).resolve().parts
        name = "/".join(parts[-4:-2]) if len(parts) > 4 else Path(path).name  # RUN/version_K of RUN/version_K/checkpoints/x
        common = dict(seed=0, steps=args.steps, batch_size=args.num, extend_mode=args.mode)
        module.generate(1, num_frames=1 + stride * (window - 1), **{**common, "batch_size": 1})  # warm-up
        for frames in args.frames:
            long = 1 + (frames - 1) // stride > window
            extra = dict(num_frames=frames, overlap=args.overlap if long else 0, context_frames=args.context)
            walls, cpus, peaks, videos = [], [], [], None
            for _ in range(args.repeats):
                wall, cpu = time.perf_counter(), time.process_time()
                with PeakMemory(device) as mem:
                    out = module.generate(args.num, **common, **extra)
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
                peaks.append(mem.peak)
                videos = out if videos is None else videos
                del out
            row = {"model": name, "mode": mode if long else "one pass", "frames": frames,
                   "windows": len(plan_windows(1 + (frames - 1) // stride, window, args.context, extra["overlap"])),
                   "wall_per_frame": statistics.median(walls) / (args.num * frames),
                   "cpu_per_frame": statistics.median(cpus) / (args.num * frames),
                   "peak_mb": statistics.median(peaks) / 2 ** 20,
                   "output_mb": videos.numel() * videos.element_size() / 2 ** 20}
            row["peak_per_frame_mb"] = row["peak_mb"] / frames
            if long:
                seams = seam_frames(plan_windows(1 + (frames - 1) // stride, window, args.context, extra["overlap"]))
                row.update(seam_statistics(frame_differences(videos), seams, stride))
            rows.append(row)
            print(_row_line(row), flush=True)
        frames = max(args.frames)
        z = module.generate(args.num, decode=False, **common, num_frames=frames, overlap=args.overlap,
                            context_frames=args.context).to(device) / module.scaling_factor
        vae = module._vae.on(device)
        from medsora.vae.chunked_decode import decode_chunked

        for how, fn in ((f"chunks of {window} latent frames", lambda: decode_chunked(vae, z, window)),
                        ("one full pass", lambda: vae.decode(z).float().clamp(-1, 1).cpu())):
            with torch.no_grad(), PeakMemory(device) as mem:
                fn()
            decode_rows.append({"model": name, "frames": frames, "decode": how, "peak_mb": mem.peak / 2 ** 20})
            print(f"decode {frames} frames, {how}: peak {mem.peak / 2 ** 20:.1f} MB", flush=True)
    return rows, decode_rows


HEADER = ("| model | mode | frames | windows | wall s/frame | CPU s/frame | peak MB (per frame) | output MB | "
          "seam diff | within | ratio | ratio same-phase |\n|---|---|---|---|---|---|---|---|---|---|---|---|")


def _row_line(row: dict) -> str:
    seam = (f"{row['seam']:.4f} | {row['within']:.4f} | {row['ratio']:.2f} | {row['ratio_same_phase']:.2f}"
            if "seam" in row else "– | – | – | –")
    return (f"| {row['model']} | {row['mode']} | {row['frames']} | {row['windows']} | {row['wall_per_frame']:.4f} | "
            f"{row['cpu_per_frame']:.4f} | {row['peak_mb']:.1f} ({row['peak_per_frame_mb']:.2f}) | "
            f"{row['output_mb']:.1f} | {seam} |")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", action="append", required=True, help="a diffusion checkpoint (repeatable)")
    p.add_argument("--vae", default=None, help="the VAE checkpoint, when the run's vae.ckpt moved")
    p.add_argument("--frames", type=int, nargs="+", default=[17, 65, 129])
    p.add_argument("--num", type=int, default=4, help="videos per call (seeds 0..num-1)")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per frame count (median)")
    p.add_argument("--steps", type=int, default=None, help="sampling steps (default: the run's)")
    p.add_argument("--overlap", type=int, default=0)
    p.add_argument("--context", type=int, default=1, help="context latent frames per window")
    p.add_argument("--mode", choices=("context", "replace"), default=None, help="default: by the model")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    p.add_argument("--no-append", action="store_true", help="print only; do not append to RESULTS.md")
    args = p.parse_args(argv)
    if args.device == "cpu" and sys.platform == "linux" and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        # glibc keeps freed blocks below its (growing) mmap threshold in the heap, where a later peak hides in
        # memory that is resident but free; with every block over 64 KiB mapped, RSS follows live tensors
        os.execve(sys.executable, [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:])],
                  {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"})
    import torch

    load_before = os.getloadavg()[0]
    rows, decode_rows = run(args)
    device = "cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu"
    memory = "torch.cuda.max_memory_allocated above the allocation before the call" if device == "cuda" else \
        "peak RSS (VmHWM, reset by /proc/self/clear_refs; MALLOC_MMAP_THRESHOLD_=65536) above the RSS before the call"
    table = "\n".join([HEADER, *(_row_line(r) for r in rows)])
    decode = "\n".join(f"- {r['model']}, {r['frames']} frames decoded in {r['decode']}: peak {r['peak_mb']:.1f} MB"
                       for r in decode_rows)
    title = " → ".join(str(f) for f in args.frames) + " frames" + (f", --overlap {args.overlap}" if args.overlap else "")
    text = (f"## Long video: {title}\n\n"
            f"`python benchmarks/long_video.py {' '.join(argv if argv is not None else sys.argv[1:])}`\n\n"
            f"Machine: {describe_machine(device=device)} (load {load_before:.1f} at the start). {args.num} videos "
            f"per call, median of {args.repeats} calls; memory: {memory}; output = the returned float32 videos.\n\n"
            f"{table}\n\n{decode}\n")
    print(text)
    if not args.no_append:
        print(f"appended to {append_results(text)}")


if __name__ == "__main__":
    main()
