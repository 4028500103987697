"""One command for a lent GPU: training step, memory, throughput and sampling of the presets, then the scan rows.

    python benchmarks/gpu_suite.py                      # <= 8 min on a GPU; appends to benchmarks/RESULTS.md
    python benchmarks/gpu_suite.py --budget 300 --json /tmp/suite.json
    python benchmarks/gpu_suite.py --smoke              # tiny, on the CPU: checks the program, not the GPU

Rows, in this order (each inside its own try/except: an error or an out-of-memory is recorded in its row
and the suite goes on; a row that would start after the time budget is marked "skipped (budget)"):

1. training step (forward, backward, AdamW step) of ``medsora_s`` and ``medsora_b`` at 128²×17 and
   256²×65 frames (latent grids 5×8×8 and 17×16×16 tokens after the 8× VAE and 2×2 patches), batch
   ``--batch``, bf16 autocast (Lightning's bf16-mixed), ``scan_impl=cuda`` where the mamba_ssm kernels
   import and ``torch`` otherwise; against a full-attention DiT (``blocks=[full_attn]``, MLP×4, same
   width and heads) whose depth is chosen to match the preset's parameter count; each preset once per
   ``--recompute`` value (``model.mamba_recompute``: ``full`` recomputes the Mamba-2 layers' conv, scan and
   norm in backward, ``off`` keeps them; default both, side by side). Median step time over
   ``--repeats`` after ``--warmup`` steps, peak memory (CUDA max_memory_allocated, or the process's peak
   RSS growth on the CPU), tokens/s = batch × tokens / step time;
2. sampling: seconds per clip for ``--sample-steps`` denoiser evaluations with classifier-free guidance
   (batch 2 per clip), no VAE decode (its weights are not in the repository);
3. benchmarks/scan_gpu.py with the remaining budget (GPU only; it appends its own section).

The table prints row by row; the section (command, machine line, table) is appended to RESULTS.md and,
with ``--json PATH``, every row as JSON.
"""
from __future__ import annotations

import argparse
import datetime
import json
import resource
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout, also when not installed
from machine_info import append_results, describe_machine  # noqa: E402

from medsora.backbone import MedSoraDiT  # noqa: E402
from medsora.backbone.presets import preset_config  # noqa: E402
from medsora.ssm import kernels  # noqa: E402

LATENT_CHANNELS = 16
# (label, T, h, w): latent frames and token grid of a clip (8× VAE, 4× in time, 2×2 patches)
CLIPS = {"128²×17": (5, 8, 8), "256²×65": (17, 16, 16)}
SMOKE_CLIPS = {"32²×9": (3, 2, 2)}
HEADER = ("| model | clip | tokens | params (M) | scan | step ms | peak MiB | tokens/s | note |\n"
          "|---|---|---:|---:|---|---:|---:|---:|---|")


class Budget:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def scan_impl_for(device: str) -> str:
    return "cuda" if device == "cuda" and kernels.HAS_SSD_KERNEL else "torch"


def dotlist(overrides: dict) -> list:
    """``key=value`` overrides of a preset."""
    return [f"{k}={v}" for k, v in overrides.items()]


def build(name: str, device: str, smoke: bool, **overrides) -> MedSoraDiT:
    cfg = preset_config(name, dotlist(overrides))
    with torch.device(device):
        return MedSoraDiT(LATENT_CHANNELS, cfg)


def params_of(name: str, **overrides) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in MedSoraDiT(LATENT_CHANNELS, preset_config(name, dotlist(overrides))).parameters())


def matched_attention_depth(name: str, target: int) -> int:
    """Depth of a full-attention DiT (same width and heads, MLP×4) whose parameter count is nearest ``target``."""
    base = dict(blocks="[full_attn]", mlp_ratio=4.0, depth=1)
    one = params_of(name, **base)
    two = params_of(name, **dict(base, depth=2))
    per_layer, fixed = two - one, 2 * one - two
    return max(1, round((target - fixed) / per_layer))


class Meter:
    """Peak memory of a region: CUDA allocator peak, or the growth of the process's peak RSS on the CPU."""

    def __init__(self, device: str):
        self.device = device

    def __enter__(self):
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            self.base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return self

    def __exit__(self, *exc):
        if self.device == "cuda":
            torch.cuda.synchronize()
            self.peak_mib = (torch.cuda.max_memory_allocated() - self.base) / 2**20
        else:
            self.peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - self.base) / 2**20


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def label_of(name: str, overrides: dict) -> str:
    """A row's model: the preset (with ``mamba_recompute`` unless it is the default) or the matched DiT."""
    if overrides.get("blocks"):
        return f"full-attention DiT (depth {overrides['depth']})"
    recompute = overrides.get("mamba_recompute", "full")
    return name if recompute == "full" else f"{name} (mamba_recompute={recompute})"


def train_row(args, name: str, clip: str, grid, **overrides) -> dict:
    device, (t_len, h, w) = args.device, grid
    scan = scan_impl_for(device)
    torch.manual_seed(0)
    model = build(name, device, args.smoke, scan_impl=scan, **overrides)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(args.batch, LATENT_CHANNELS, t_len, 2 * h, 2 * w, device=device)
    t = torch.randint(0, 1000, (args.batch,), device=device)
    noise = torch.randn_like(x)

    def step():
        sync(device)
        start = time.perf_counter()
        with torch.autocast(device, dtype=args.dtype, enabled=args.dtype != torch.float32):
            out = model(x, t)
        loss = (out[:, :LATENT_CHANNELS].float() - noise).square().mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        return time.perf_counter() - start

    with Meter(device) as meter:
        first = step()
    for _ in range(args.warmup - 1):
        step()
    ms = statistics.median([step() for _ in range(args.repeats)]) * 1e3
    tokens = t_len * h * w
    return dict(kind="train", model=label_of(name, overrides), clip=clip, tokens=tokens, params_m=sum(p.numel() for p in model.parameters()) / 1e6,
                scan=scan, step_ms=ms, peak_mib=meter.peak_mib, tokens_per_s=args.batch * tokens / (ms / 1e3),
                first_step_ms=first * 1e3)


@torch.no_grad()
def sample_row(args, name: str, clip: str, grid) -> dict:
    device, (t_len, h, w) = args.device, grid
    scan = scan_impl_for(device)
    torch.manual_seed(0)
    model = build(name, device, args.smoke, scan_impl=scan).eval()
    x = torch.randn(2, LATENT_CHANNELS, t_len, 2 * h, 2 * w, device=device)  # conditional + unconditional
    t = torch.full((2,), 500, device=device)

    def run(steps):
        sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            with torch.autocast(device, dtype=args.dtype, enabled=args.dtype != torch.float32):
                model(x, t)
        sync(device)
        return time.perf_counter() - start

    run(1)  # warm-up (kernels, autotuning)
    seconds = run(args.sample_steps)
    return dict(kind="sample", model=name, clip=clip, tokens=t_len * h * w, scan=scan, steps=args.sample_steps,
                seconds_per_clip=seconds)


def fmt(row: dict) -> str:
    if row["kind"] == "sample" and "seconds_per_clip" in row:
        return (f"| {row['model']} | {row['clip']} | {row['tokens']} | — | {row['scan']} | sampling: "
                f"{row['seconds_per_clip']:.2f} s per clip ({row['steps']} steps, CFG batch 2) | — | — | |")
    if "step_ms" not in row:
        return (f"| {row['model']} | {row['clip']} | {row.get('tokens', '—')} | — | {row.get('scan', '—')} | — | — | — "
                f"| {row['note']} |")
    return (f"| {row['model']} | {row['clip']} | {row['tokens']} | {row['params_m']:.1f} | {row['scan']} | "
            f"{row['step_ms']:.1f} | {row['peak_mib']:.0f} | {row['tokens_per_s']:.0f} | {row.get('note', '')} |")


def guarded(fn, budget: Budget, need_s: float, base: dict) -> dict:
    """Run one row: skipped when the budget is spent, its error (or out-of-memory) recorded otherwise."""
    if budget.left() < need_s:
        return dict(base, note="skipped (budget)")
    try:
        return fn()
    except torch.cuda.OutOfMemoryError:
        return dict(base, note="out of memory")
    except Exception as err:  # noqa: BLE001 - the suite records the error and goes on
        traceback.print_exc(file=sys.stderr)
        return dict(base, note=f"error: {type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else ''}")
    finally:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget", type=float, default=480.0, help="seconds for the whole suite (default 8 min)")
    ap.add_argument("--smoke", action="store_true", help="tiny preset and grids on the CPU: checks the program")
    ap.add_argument("--json", default=None, help="also write every row to this JSON file")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sample-steps", type=int, default=50)
    ap.add_argument("--models", default=None, help="presets, comma separated (default medsora_s,medsora_b)")
    ap.add_argument("--recompute", default="full,off",
                    help="model.mamba_recompute values to time each preset with, comma separated (default full,off)")
    ap.add_argument("--no-scan-rows", action="store_true", help="skip benchmarks/scan_gpu.py")
    ap.add_argument("--results", default=None, help="file to append the section to (default benchmarks/RESULTS.md)")
    args = ap.parse_args(argv)
    budget, began = Budget(args.budget), time.time()
    args.device = "cuda" if torch.cuda.is_available() and not args.smoke else "cpu"
    args.dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    models = args.models.split(",") if args.models else (["tiny"] if args.smoke else ["medsora_s", "medsora_b"])
    clips = SMOKE_CLIPS if args.smoke else CLIPS
    recomputes = args.recompute.split(",")
    bad = sorted(set(recomputes) - {"full", "off"})
    if bad:
        ap.error(f"--recompute: {bad} are not model.mamba_recompute values; use full and/or off")
    if args.smoke:
        args.warmup, args.repeats, args.sample_steps, args.batch = 1, 1, 2, 1
    machine = describe_machine(device=args.device)
    print(f"machine: {machine}\nkernels: SSD {kernels.HAS_SSD_KERNEL}, selective scan "
          f"{kernels.HAS_SELECTIVE_SCAN_KERNEL}, causal_conv1d {kernels.HAS_CAUSAL_CONV1D}; dtype {args.dtype}; "
          f"budget {args.budget:.0f} s\n{HEADER}", flush=True)
    rows = []

    def emit(row):
        rows.append(row)
        print(fmt(row), flush=True)

    share = 0.7 * args.budget / max(1, (1 + len(recomputes)) * len(models) * len(clips))  # what a model row may start with
    for name in models:
        matched = guarded(lambda: {"depth": matched_attention_depth(name, params_of(name))}, budget, 0,
                          dict(kind="train", model=name, clip="—"))
        for clip, grid in clips.items():
            base = dict(kind="train", model=name, clip=clip, tokens=grid[0] * grid[1] * grid[2])
            for recompute in recomputes:
                emit(guarded(lambda: train_row(args, name, clip, grid, mamba_recompute=recompute), budget,
                             min(5.0, share), dict(base, model=label_of(name, {"mamba_recompute": recompute}))))
            if "depth" in matched:
                dit = dict(blocks="[full_attn]", mlp_ratio=4.0, depth=matched["depth"])
                emit(guarded(lambda: train_row(args, name, clip, grid, **dit), budget, min(5.0, share),
                             dict(base, model=f"full-attention DiT (depth {dit['depth']})")))
            else:
                emit(dict(base, model="full-attention DiT", note=matched.get("note", "")))
    for name in models:
        for clip, grid in clips.items():
            emit(guarded(lambda: sample_row(args, name, clip, grid), budget, 5.0,
                         dict(kind="sample", model=name, clip=clip, tokens=grid[0] * grid[1] * grid[2],
                              steps=args.sample_steps)))
    scan_note = "not run (--no-scan-rows)"
    if not args.no_scan_rows:
        if args.device != "cuda":
            scan_note = "not run (no CUDA device)"
        elif budget.left() < 30:
            scan_note = "skipped (budget)"
        else:
            try:
                import scan_gpu
                code = scan_gpu.main(["--budget", f"{max(10.0, budget.left() - 20):.0f}",
                                      *(["--results", args.results] if args.results else [])])
                scan_note = f"benchmarks/scan_gpu.py appended its own section (exit {code})"
            except Exception as err:  # noqa: BLE001
                traceback.print_exc(file=sys.stderr)
                scan_note = f"error: {type(err).__name__}: {err}"
    print(f"scan rows: {scan_note}", flush=True)

    cmd = "python benchmarks/gpu_suite.py " + " ".join(argv if argv is not None else sys.argv[1:])
    section = (f"\n## GPU suite: presets vs a parameter-matched full-attention DiT ({datetime.date.today().isoformat()})"
               f"\n\nCommand: `{cmd.strip()}` ({(time.time() - began) / 60:.1f} min). Machine: {machine}. "
               f"dtype {str(args.dtype).replace('torch.', '')} autocast, batch {args.batch}, median of {args.repeats} "
               f"steps after {args.warmup} warm-up; step = forward + backward + AdamW. Kernels: SSD "
               f"{kernels.HAS_SSD_KERNEL}, causal_conv1d {kernels.HAS_CAUSAL_CONV1D}.\n\n" + HEADER + "\n"
               + "\n".join(fmt(r) for r in rows) + f"\n\nScan rows: {scan_note}.\n")
    if args.smoke:
        section = section.replace("## GPU suite:", "## GPU suite (--smoke, CPU: checks the program only):")
    append_results(section, args.results)
    if args.json:
        Path(args.json).write_text(json.dumps(dict(command=cmd.strip(), machine=machine, rows=rows,
                                                   scan_rows=scan_note), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
