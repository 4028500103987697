"""Benchmark the scans on a CUDA GPU: the ``mamba_ssm`` kernels against our pure-PyTorch path (issue 4).

The GPU counterpart of ``benchmarks/scan.py``, same shapes and inputs: SSD (Mamba-2) at batch 2 × 8
heads, headdim 64, one B/C group, d_state 64 and 128; selective scan (Mamba-1 S6) at batch 2 × 512
channels, d_state 16. For each length: the sequential reference (L <= --ref-max-len, 1024), the minimal chunked SSD of
the Mamba-2 paper (Listing 1), ours (``medsora.ssm.ssd`` / ``selective_scan``) and the kernels
(``mamba_chunk_scan_combined``, Triton; ``selective_scan_fn``, CUDA), forward and forward+backward,
fp32 and bf16 (bf16: ours and the kernels). Also the Mamba-2 and Mamba-1 layers with
``scan_impl=torch`` against ``scan_impl=cuda`` (the kernels plus ``causal_conv1d``).

Time: CUDA events around each call, median over repeats after warm-up (the first calls compile and
autotune Triton kernels). Peak memory: ``max_memory_allocated`` during one call minus what was allocated
before it (inputs excluded). Forward+backward backpropagates ``y.sum()`` (as when the recorded H100 table
was measured; benchmarks/scan.py has since moved to a dense random gradient). Parity: relative error
‖ours − kernel‖ / ‖kernel‖ of y and of dx, fp32.

    python benchmarks/scan_gpu.py                       # appends its section to benchmarks/RESULTS.md
    python benchmarks/scan_gpu.py --lengths 256,1024 --results /tmp/gpu.md
"""
from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout, also when not installed
from machine_info import append_results, describe_machine  # noqa: E402
from scan import B_, H_, Q0, S6_N, _inputs, nominal_flops, ssd_minimal  # noqa: E402

from medsora.ssm import kernels, selective_scan, selective_scan_ref, ssd, ssd_ref  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def make_inputs(kind, L, n, dtype, dev="cuda"):
    """benchmarks/scan.py's inputs on ``dev``: A and dt (SSD) stay fp32, as in the layers; the rest take ``dtype``."""
    fp32 = (1, 2) if kind == "ssd" else (2,)
    return [t.to(dev, torch.float32 if i in fp32 else dtype)
            for i, t in enumerate(_inputs(dict(kind=kind, L=L, n=n)))]


def ssd_impls(L, n):
    impls = {"sequential": lambda x, dt, A, Bm, Cm: ssd_ref(x, dt, A, Bm, Cm),
             "minimal": lambda x, dt, A, Bm, Cm: ssd_minimal(
                 x * dt[..., None], dt * A, Bm.expand(B_, L, H_, n), Cm.expand(B_, L, H_, n), Q0)[0]}
    for q in (64, 256):
        impls[f"ours (chunk {q})"] = lambda x, dt, A, Bm, Cm, q=q: ssd(x, dt, A, Bm, Cm, q)
    if kernels.HAS_SSD_KERNEL:
        # chunk 256: mamba_ssm's default (each chunk size autotunes its Triton kernels anew)
        impls["kernel (chunk 256)"] = lambda x, dt, A, Bm, Cm: kernels.mamba_chunk_scan_combined(x, dt, A, Bm, Cm, 256)
    return impls


def s6_impls():
    impls = {"sequential": selective_scan_ref, "ours": selective_scan}
    if kernels.HAS_SELECTIVE_SCAN_KERNEL:
        impls["kernel"] = kernels.selective_scan_fn
    return impls


def _call(fn, inputs, backward):
    if not backward:
        with torch.no_grad():
            return fn(*inputs)
    for t in inputs:
        t.requires_grad_(True)
        t.grad = None
    y = fn(*inputs)
    y = y[0] if isinstance(y, tuple) else y
    y.float().sum().backward()
    grad = inputs[0].grad
    for t in inputs:
        t.requires_grad_(False)
        t.grad = None
    return y.detach(), grad


def measure(fn, inputs, backward, warmup, repeats):
    """(median ms, peak MiB above the inputs) of one call."""
    for _ in range(warmup):
        _call(fn, inputs, backward)
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    _call(fn, inputs, backward)
    torch.cuda.synchronize()
    peak = (torch.cuda.max_memory_allocated() - base) / 2 ** 20
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        _call(fn, inputs, backward)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times), peak


def rel_err(a, b):
    return float((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-30))


def matmul_tflops(dtype, size=8192, repeats=10):
    a = torch.randn(size, size, device="cuda", dtype=dtype)
    b = torch.randn(size, size, device="cuda", dtype=dtype)
    ms, _ = measure(lambda a, b: a @ b, [a, b], False, 3, repeats)
    return 2 * size ** 3 / ms / 1e9


def _parity(kind, L, n, dname, impls, inputs):
    """Relative error of ours against the kernel at the same chunk, y and dx ([] without the kernel)."""
    ours, kern = ("ours (chunk 256)", "kernel (chunk 256)") if kind == "ssd" else ("ours", "kernel")
    if kern not in impls:
        return []
    y0, g0 = _call(impls[ours], inputs, True)
    y1, g1 = _call(impls[kern], inputs, True)
    return [f"- {kind} L {L}{f', d_state {n}' if n else ''}, {dname}: ‖ours − kernel‖/‖kernel‖ = "
            f"{rel_err(y0, y1):.1e} (y), {rel_err(g0, g1):.1e} (dx)"]


def run_scans(args):
    rows, parity = [], []
    t_end = time.time() + args.budget
    for dname in args.dtypes:  # fp32 (the CPU table's dtype) first: the budget may cut the rest
        for kind in ("ssd", "s6"):
            for n in (args.d_states if kind == "ssd" else [None]):
                for L in args.lengths:
                    dtype = DTYPES[dname]
                    inputs = make_inputs(kind, L, n, dtype)
                    impls = ssd_impls(L, n) if kind == "ssd" else s6_impls()
                    for name, fn in impls.items():
                        if name in ("sequential", "minimal") and dname != "fp32":
                            continue
                        if name == "sequential" and L > args.ref_max_len:
                            continue
                        if time.time() > t_end:
                            print(f"time budget ({args.budget:.0f} s) spent: stopping", flush=True)
                            return rows, parity
                        slow = name == "sequential"
                        warm, reps = (1, 2) if slow else (args.warmup, args.repeats)
                        fwd, mem_f = measure(fn, inputs, False, warm, reps)
                        fb, mem_fb = measure(fn, inputs, True, warm, reps)
                        row = dict(kind=kind, L=L, n=n, dtype=dname, impl=name, fwd=fwd, fb=fb, mem_fwd=mem_f,
                                   mem_fb=mem_fb)
                        rows.append(row)
                        print(_row(row, rows), flush=True)
                    parity += _parity(kind, L, n, dname, impls, inputs) if dname == "fp32" else []
                    del inputs
                    torch.cuda.empty_cache()
    return rows, parity


def run_layers(args):
    """Mamba-2 / Mamba-1 layer, forward+backward, scan_impl torch vs cuda, fp32 and bf16 autocast."""
    from medsora.ssm import Mamba1Layer, Mamba2Layer
    lines = []
    if not (kernels.HAS_SSD_KERNEL and kernels.HAS_SELECTIVE_SCAN_KERNEL):
        return ["- layers: skipped (the kernels do not import)"]
    for cls, d in ((Mamba2Layer, 512), (Mamba1Layer, 512)):
        for L in (1024, 4096):
            torch.manual_seed(0)
            x = torch.randn(2, L, d, device="cuda")
            res, outs = {}, {}
            for impl in ("torch", "cuda"):
                for dname in args.dtypes:
                    torch.manual_seed(1)  # the same weights for both paths
                    layer = cls(d, scan_impl=impl).cuda()

                    def step(x, layer=layer, dname=dname):
                        with torch.autocast("cuda", dtype=DTYPES[dname], enabled=dname != "fp32"):
                            return layer(x)
                    res[(impl, dname)] = measure(step, [x], True, args.warmup, args.repeats)
                    outs[(impl, dname)] = _call(step, [x], False)
            for dname in args.dtypes:
                (t_t, m_t), (t_c, m_c) = res[("torch", dname)], res[("cuda", dname)]
                err = rel_err(outs[("torch", dname)], outs[("cuda", dname)])
                lines.append(f"| {cls.__name__} d_model {d} | {L} | {dname} | {t_t:.2f} | {t_c:.2f} | {t_t / t_c:.1f}× "
                             f"| {m_t:.0f} | {m_c:.0f} | {err:.1e} |")
    return ["| layer | L | dtype | fwd+bwd ms, ours | fwd+bwd ms, kernels | kernels' speed-up | peak MiB ours "
            "| peak MiB kernels | ‖y_ours − y_kernels‖/‖y_kernels‖ |", "|" + "---|" * 9] + lines


def _row(r, rows):
    kern = "kernel (chunk 256)" if r["kind"] == "ssd" else "kernel"
    peer = next((x for x in rows if x["kind"] == r["kind"] and x["L"] == r["L"] and x["n"] == r["n"]
                 and x["dtype"] == r["dtype"] and x["impl"] == kern), None)
    vs = f"{r['fb'] / peer['fb']:.1f}×" if peer and not r["impl"].startswith("kernel") else "—"
    if r["kind"] == "ssd":
        W = nominal_flops(r["L"], r["n"])
        tf = f"{W / r['fwd'] / 1e9:.2f} | {3 * W / r['fb'] / 1e9:.2f}"
    else:
        tf = "— | —"
    return (f"| {r['kind']} | {r['L']} | {r['n'] or S6_N} | {r['dtype']} | {r['impl']} | {r['fwd']:.3f} | {r['fb']:.3f} "
            f"| {r['mem_fwd']:.0f} | {r['mem_fb']:.0f} | {vs} | {tf} |")


HEADER = ("| scan | L | d_state | dtype | implementation | fwd ms | fwd+bwd ms | peak MiB fwd | peak MiB fwd+bwd "
          "| fwd+bwd time ÷ kernel's (chunk 256) | TFLOP/s fwd | TFLOP/s fwd+bwd |\n|" + "---|" * 12)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lengths", default="256,1024,4096,16384")
    ap.add_argument("--d-states", default="64,128")
    ap.add_argument("--dtypes", default="fp32,bf16")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--ref-max-len", type=int, default=1024, help="longest L for the sequential reference")
    ap.add_argument("--budget", type=float, default=300.0, help="seconds for the scan rows; stops cleanly after")
    ap.add_argument("--no-layers", action="store_true")
    ap.add_argument("--results", default=None, help="file to append the section to (default benchmarks/RESULTS.md)")
    args = ap.parse_args(argv)
    args.lengths = [int(v) for v in args.lengths.split(",")]
    args.d_states = [int(v) for v in args.d_states.split(",")]
    args.dtypes = args.dtypes.split(",")
    if not torch.cuda.is_available():
        print("scan_gpu: no CUDA device (the CPU table is benchmarks/scan.py)", file=sys.stderr)
        return 2
    t0 = time.time()
    print(f"kernels: SSD {'yes' if kernels.HAS_SSD_KERNEL else 'NO'}, selective scan "
          f"{'yes' if kernels.HAS_SELECTIVE_SCAN_KERNEL else 'NO'}, causal_conv1d "
          f"{'yes' if kernels.HAS_CAUSAL_CONV1D else 'NO'}", flush=True)
    mm = {d: matmul_tflops(DTYPES[d]) for d in args.dtypes}
    print(HEADER, flush=True)
    rows, parity = run_scans(args)
    layers = [] if args.no_layers else run_layers(args)
    print("\n".join(parity + [""] + layers), flush=True)
    cmd = "python benchmarks/scan_gpu.py " + " ".join(argv if argv is not None else sys.argv[1:])
    section = (f"\n## scan on GPU: mamba_ssm kernels vs pure PyTorch ({datetime.date.today().isoformat()})\n\n"
               f"Command: `{cmd.strip()}` ({(time.time() - t0) / 60:.1f} min). Machine: "
               f"{describe_machine(device='cuda')}. torch.matmul 8192²: "
               + ", ".join(f"{d} {v:.0f} TFLOP/s" for d, v in mm.items())
               + " (fp32 without TF32, torch's default).\n\n"
               "Medians of CUDA-event times after warm-up; peak = max_memory_allocated during one call above the "
               "inputs. TFLOP/s: the nominal chunked-SSD count of benchmarks/scan.py. 'kernel': mamba_ssm's "
               "mamba_chunk_scan_combined (Triton) or selective_scan_fn (CUDA).\n\n"
               + "\n".join([HEADER] + [_row(r, rows) for r in rows]) + "\n\nParity (fp32, same chunk):\n"
               + "\n".join(parity) + ("\n\nLayers: not run (`--no-layers`).\n" if args.no_layers else
                  "\n\nLayers (batch 2, forward+backward; `cuda`: the scan kernels, and causal_conv1d "
                  f"{'too' if kernels.HAS_CAUSAL_CONV1D else 'not (it did not import: nn.Conv1d)'}):\n\n" + "\n".join(layers) + "\n"))
    append_results(section, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
