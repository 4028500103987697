"""Benchmark the state-space scans (issue 4): time, peak memory and throughput on CPU.

SSD (Mamba-2): the sequential recurrence (``ssd_ref``), the minimal chunked SSD algorithm of the
Mamba-2 paper (its Listing 1, copied below as the peer baseline) and ours (``medsora.ssm.ssd``),
at batch 2 × 8 heads, headdim 64, one B/C group, d_state 64 and 128. Selective scan (Mamba-1 S6):
``selective_scan_ref`` against ours at batch 2 × 512 channels, d_state 16. fp32, forward and
forward+backward (backward of a fixed dense random gradient), plus ``torch.matmul`` (2048², fp32)
throughput in the same run.

How it measures (a shared, oversubscribed 2-core VM):
- every configuration runs in its own subprocess with one intra-op thread. Time is the process CPU
  time (user + system, so page faults count), median of several repeats: wall-clock time on this
  machine mostly measures the other tenants, and with two threads every OpenMP region waits for a
  descheduled sibling. Wall-clock medians are printed too.
- peak memory: the resident-set high-water mark (``VmHWM``) of that subprocess, reset through
  ``/proc/self/clear_refs`` right before the first call, minus the resident set at that moment (inputs
  included there). This counts every allocation the call touches, torch's and the allocator's;
  Python-level tracers such as tracemalloc do not see torch's allocations.
- effective GFLOP/s use one nominal count for every implementation, the matmul work of the chunked
  algorithm at chunk 64 with C·Bᵀ computed once per group: W = 2·b·L·(g·64·n + h·64·p + 2·h·p·n)
  for the forward and 3·W for forward+backward.

Inputs follow the Mamba-2 initialisation: A = -U(1, 16) per head, dt = softplus(bias + 0.5·N(0, 1))
with the bias of a step log-uniform in [1e-3, 1e-1].

    python benchmarks/scan.py            # full table, appended to benchmarks/RESULTS.md
    python benchmarks/scan.py --quick    # L in {256, 1024}, d_state 64
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import resource  # POSIX, as the /proc reads below
import statistics
import subprocess
import sys
import time
from pathlib import Path

from machine_info import append_results, describe_machine

B_, H_, P_, G_, Q0 = 2, 8, 64, 1, 64  # batch, heads, headdim, groups, nominal chunk
S6_D, S6_N = 512, 16


# ----------------------------------------------------------------------------------------------------
# The peer baseline: the minimal SSD algorithm, Listing 1 of "Transformers are SSMs" (Dao & Gu, 2024).
def segsum(x):
    """Naive segment sum calculation. exp(segsum(A)) produces a 1-SS matrix,
    which is equivalent to a scalar SSM."""
    import torch
    T = x.size(-1)
    x_cumsum = torch.cumsum(x, dim=-1)
    x_segsum = x_cumsum[..., :, None] - x_cumsum[..., None, :]
    mask = torch.tril(torch.ones(T, T, device=x.device, dtype=bool), diagonal=0)
    x_segsum = x_segsum.masked_fill(~mask, -torch.inf)
    return x_segsum


def ssd_minimal(X, A, B, C, block_len, initial_states=None):
    """
    Arguments:
        X: (batch, length, n_heads, d_head)
        A: (batch, length, n_heads)
        B: (batch, length, n_heads, d_state)
        C: (batch, length, n_heads, d_state)
    Return:
        Y: (batch, length, n_heads, d_head)
    """
    import torch
    import torch.nn.functional as F
    from einops import rearrange
    assert X.dtype == A.dtype == B.dtype == C.dtype
    assert X.shape[1] % block_len == 0

    # Rearrange into blocks/chunks
    X, A, B, C = [rearrange(x, "b (c l) ... -> b c l ...", l=block_len) for x in (X, A, B, C)]

    A = rearrange(A, "b c l h -> b h c l")
    A_cumsum = torch.cumsum(A, dim=-1)

    # 1. Compute the output for each intra-chunk (diagonal blocks)
    L = torch.exp(segsum(A))
    Y_diag = torch.einsum("bclhn,bcshn,bhcls,bcshp->bclhp", C, B, L, X)

    # 2. Compute the state for each intra-chunk
    # (right term of low-rank factorization of off-diagonal blocks; B terms)
    decay_states = torch.exp((A_cumsum[:, :, :, -1:] - A_cumsum))
    states = torch.einsum("bclhn,bhcl,bclhp->bchpn", B, decay_states, X)

    # 3. Compute the inter-chunk SSM recurrence; produces correct SSM states at chunk boundaries
    # (middle term of factorization of off-diag blocks; A terms)
    if initial_states is None:
        initial_states = torch.zeros_like(states[:, :1])
    states = torch.cat([initial_states, states], dim=1)
    decay_chunk = torch.exp(segsum(F.pad(A_cumsum[:, :, :, -1], (1, 0))))
    new_states = torch.einsum("bhzc,bchpn->bzhpn", decay_chunk, states)
    states, final_state = new_states[:, :-1], new_states[:, -1]

    # 4. Compute state -> output conversion per chunk
    # (left term of low-rank factorization of off-diagonal blocks; C terms)
    state_decay_out = torch.exp(A_cumsum)
    Y_off = torch.einsum('bclhn,bchpn,bhcl->bclhp', C, states, state_decay_out)

    # Add output of intra-chunk and inter-chunk terms (diagonal and off-diagonal blocks)
    Y = rearrange(Y_diag + Y_off, "b c l h p -> b (c l) h p")
    return Y, final_state


# ----------------------------------------------------------------------------------------------------
# Worker: one configuration in a fresh process.
def _status_kb(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def _peak_mb(fn):
    """Extra resident memory (MiB) while fn() runs, from the VmHWM high-water mark."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current resident set
    before = _status_kb("VmRSS")
    fn()
    return (_status_kb("VmHWM") - before) / 1024


def _inputs(cfg):
    import torch
    import torch.nn.functional as F
    from medsora.ssm.init import dt_bias_init
    gen = torch.manual_seed(0)
    L = cfg["L"]
    if cfg["kind"] == "ssd":
        n = cfg["n"]
        x = torch.randn(B_, L, H_, P_, generator=gen)
        dt = F.softplus(dt_bias_init(H_) + 0.5 * torch.randn(B_, L, H_, generator=gen))
        A = -(1 + 15 * torch.rand(H_, generator=gen))
        Bm, Cm = torch.randn(B_, L, G_, n, generator=gen), torch.randn(B_, L, G_, n, generator=gen)
        return [x, dt, A, Bm, Cm]
    u = torch.randn(B_, S6_D, L, generator=gen)
    delta = F.softplus(dt_bias_init(S6_D)[:, None] + 0.5 * torch.randn(B_, S6_D, L, generator=gen))
    A = -torch.arange(1, S6_N + 1, dtype=torch.float32).repeat(S6_D, 1)
    Bm, Cm = torch.randn(B_, S6_N, L, generator=gen), torch.randn(B_, S6_N, L, generator=gen)
    return [u, delta, A, Bm, Cm]


def _forward(kind, impl, L, n, chunk):
    from medsora.ssm import selective_scan, selective_scan_ref, ssd, ssd_ref
    if kind == "s6":
        fn = selective_scan_ref if impl == "sequential" else selective_scan
        return lambda u, delta, A, Bm, Cm: fn(u, delta, A, Bm, Cm)
    if impl == "sequential":
        return lambda x, dt, A, Bm, Cm: ssd_ref(x, dt, A, Bm, Cm)
    if impl == "minimal":
        def run_minimal(x, dt, A, Bm, Cm):
            expand = (B_, L, H_, n)
            return ssd_minimal(x * dt[..., None], dt * A, Bm.expand(expand), Cm.expand(expand), Q0)[0]
        return run_minimal
    return lambda x, dt, A, Bm, Cm: ssd(x, dt, A, Bm, Cm, chunk)


def _steps(cfg, impl, chunk):
    """(forward, forward+backward) closures of one implementation on the configuration's inputs."""
    import torch
    inputs = _inputs(cfg)
    fwd = _forward(cfg["kind"], impl, cfg["L"], cfg.get("n"), chunk)

    def run_fwd():
        with torch.no_grad():
            fwd(*inputs)

    # A dense upstream gradient, as in training (``.sum()`` would hand back a stride-0 one), made before
    # any measurement so that it counts in no implementation's peak memory. y has the shape of x / u.
    grad = torch.randn(inputs[0].shape, generator=torch.Generator().manual_seed(1))

    def run_fb():
        for t in inputs:
            t.requires_grad_(True)
            t.grad = None
        fwd(*inputs).backward(grad)
        for t in inputs:
            t.requires_grad_(False)
            t.grad = None

    return {"fwd": run_fwd, "fb": run_fb}


def _timed(step):
    """(process CPU time, wall time, user CPU time) of one call. User time leaves out the kernel's work
    for the process, mostly first-touch page faults of freshly mapped memory."""
    c0, w0, u0 = time.process_time(), time.perf_counter(), _user_time()
    step()
    return time.process_time() - c0, time.perf_counter() - w0, _user_time() - u0


def _user_time():
    # getrusage has microsecond resolution where os.times() counts 10 ms ticks
    return resource.getrusage(resource.RUSAGE_SELF).ru_utime


def worker(cfg):
    """``mem``: peak memory of one call in this fresh process. ``time``: rounds of every listed
    implementation and mode, interleaved with a 2048² matmul, so slow drifts of the machine hit all
    of them alike; medians over rounds."""
    import torch
    torch.set_num_threads(cfg["threads"])
    if cfg["job"] == "mem":
        # First call in a fresh process: memory freed by an earlier call would stay in the
        # allocator's heap and hide part of the peak.
        return {"mem": _peak_mb(_steps(cfg, cfg["impl"], cfg["chunk"])[cfg["mode"]])}
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    # impls: [name, chunk, modes] or [name, chunk, modes, L] to time several lengths side by side.
    jobs = {(impl, chunk, mode, rest[0] if rest else cfg["L"]): step for impl, chunk, modes, *rest in cfg["impls"]
            for mode, step in _steps(dict(cfg, L=rest[0] if rest else cfg["L"]), impl, chunk).items()
            if mode in modes}
    jobs[("matmul", None, "mm", 0)] = lambda: a @ b
    for step in jobs.values():  # warm-up
        step()
    times = {key: [] for key in jobs}
    t_end = time.process_time() + cfg["budget"]
    for _ in range(cfg["repeats"]):
        for key, step in jobs.items():
            times[key].append(_timed(step))
        if time.process_time() > t_end:
            break
    out = {}
    for (impl, chunk, mode, L), ts in times.items():
        out.setdefault(f"{impl}/{chunk}" + (f"/{L}" if L not in (cfg["L"], 0) else ""), {})[mode] = [
            statistics.median(t[0] for t in ts), statistics.median(t[1] for t in ts), len(ts),
            statistics.median(t[2] for t in ts)]
    return out


# ----------------------------------------------------------------------------------------------------
# Driver.
def nominal_flops(L, n):
    return 2 * B_ * L * (G_ * Q0 * n + H_ * Q0 * P_ + 2 * H_ * P_ * n)


def _run_worker(cfg):
    repo = str(Path(__file__).resolve().parent.parent)  # the checkout, also when medsora is not installed
    env = dict(os.environ, OMP_NUM_THREADS=str(cfg["threads"]), MKL_NUM_THREADS=str(cfg["threads"]),
               PYTHONPATH=os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")])))
    if cfg.get("thp"):
        env["THP_MEM_ALLOC_ENABLE"] = "1"  # PyTorch's switch: transparent huge pages for large CPU tensors
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(cfg)], capture_output=True, text=True,
                          env=env)
    if proc.returncode:
        raise RuntimeError(f"worker {cfg} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _run_group(base, kind, L, n, impls):
    """Rows for one (scan, L, d_state): memory per implementation and mode, then interleaved timing.

    impls: (name, chunk, modes) with modes a subset of ("fwd", "fb").
    """
    rows = []
    for impl, chunk, modes in impls:
        row = dict(kind=kind, impl=impl, L=L, n=n, chunk=chunk)
        for mode in modes:
            row[f"mem_{mode}"] = _run_worker(dict(base, job="mem", kind=kind, L=L, n=n, impl=impl, chunk=chunk,
                                                  mode=mode))["mem"]
        rows.append(row)
    fast = [i for i in impls if i[0] != "sequential"]
    slow = [i for i in impls if i[0] == "sequential"]
    timing = _run_worker(dict(base, job="time", kind=kind, L=L, n=n, impls=fast))
    if slow:
        timing.update(_run_worker(dict(base, job="time", kind=kind, L=L, n=n, impls=slow,
                                       repeats=1 if L >= 4096 else 2)))
    mm = timing["matmul/None"]["mm"][0]
    for row in rows:
        for mode, (cpu, wall, reps, _user) in timing[f"{row['impl']}/{row['chunk']}"].items():
            row.update({mode: cpu, f"{mode}_wall": wall, f"{mode}_reps": reps})
        row["mm_gflops"] = 2 * 2048 ** 3 / mm / 1e9
    return rows


def _run_scaling(base, n, chunks, lengths=(4096, 16384)):
    """time(16384) / time(4096) of our SSD, both lengths interleaved in one process so that the ratio
    is not skewed by the machine's load changing between row groups."""
    impls = [("ours", q, ("fwd", "fb"), L) for q in chunks for L in lengths]
    timing = _run_worker(dict(base, job="time", kind="ssd", L=0, n=n, impls=impls))
    lines = []
    for q in chunks:
        t = [timing[f"ours/{q}/{L}"] for L in lengths]
        lines.append(f"- SSD ours chunk {q}, d_state {n}, both lengths in one process: time({lengths[1]}) / "
                     f"time({lengths[0]}) = {t[1]['fwd'][0] / t[0]['fwd'][0]:.2f} fwd, "
                     f"{t[1]['fb'][0] / t[0]['fb'][0]:.2f} fwd+bwd (linear = 4, target <= 4.5); in user CPU time "
                     f"(without the kernel's page-fault work) {t[1]['fwd'][3] / t[0]['fwd'][3]:.2f} fwd, "
                     f"{t[1]['fb'][3] / t[0]['fb'][3]:.2f} fwd+bwd")
    return lines


def _ref_backward_fits(kind, L, n, mem_gb):
    """The sequential recurrences keep one state per step for the backward: skip what would not fit."""
    per_step = B_ * H_ * P_ * n * 4 * 3 if kind == "ssd" else B_ * S6_D * S6_N * 4 * 4
    return L * per_step <= mem_gb * 2 ** 30


def _fmt(v, spec=".0f"):
    return "—" if v is None else format(v, spec)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="L in {256, 1024}, d_state 64, fewer repeats")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats per configuration (median)")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads in every measurement")
    ap.add_argument("--ref-mem-gb", type=float, default=3.0,
                    help="skip the sequential reference's backward where its per-step graph would exceed this")
    ap.add_argument("--chunks", default="64,128", help="chunk sizes of our SSD to measure")
    ap.add_argument("--lengths", default=None, help="comma-separated L (default 256,1024,4096,16384)")
    ap.add_argument("--d-states", default=None, help="comma-separated SSD d_state (default 64,128)")
    ap.add_argument("--no-s6", action="store_true", help="skip the selective_scan rows")
    ap.add_argument("--only-scaling", action="store_true",
                    help="only the interleaved L 4096 vs 16384 timing of our SSD (the linear-scaling check)")
    ap.add_argument("--thp", action="store_true",
                    help="run every worker with THP_MEM_ALLOC_ENABLE=1 (transparent huge pages for large tensors: "
                         "a 2 MiB page fault instead of 512 4 KiB ones on first touch)")
    ap.add_argument("--no-append", action="store_true", help="do not append to benchmarks/RESULTS.md")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return

    lengths = [256, 1024] if args.quick else [256, 1024, 4096, 16384]
    states = [64] if args.quick else [64, 128]
    if args.lengths:
        lengths = [int(v) for v in args.lengths.split(",")]
    if args.d_states:
        states = [int(v) for v in args.d_states.split(",")]
    repeats = args.repeats or (3 if args.quick else 7)
    chunks = [int(c) for c in args.chunks.split(",")]
    base = dict(threads=args.threads, repeats=repeats, budget=60.0, thp=args.thp)
    machine = describe_machine(args.threads)
    t_start = time.time()

    rows, scaling = [], []
    if args.only_scaling or not args.quick:
        scaling = [line for n in states for line in _run_scaling(base, n, chunks)]
        print("\n".join(scaling), flush=True)
    for n in ([] if args.only_scaling else states):
        for L in lengths:
            ref_modes = ("fwd", "fb") if _ref_backward_fits("ssd", L, n, args.ref_mem_gb) else ("fwd",)
            impls = [("sequential", None, ref_modes), ("minimal", None, ("fwd", "fb"))]
            impls += [("ours", q, ("fwd", "fb")) for q in chunks]
            rows += _run_group(base, "ssd", L, n, impls)
            print("\n".join(_row(r, rows) for r in rows[-len(impls):]), flush=True)
    for L in ([] if args.only_scaling or args.no_s6 else lengths):
        ref_modes = ("fwd", "fb") if _ref_backward_fits("s6", L, S6_N, args.ref_mem_gb) else ("fwd",)
        rows += _run_group(base, "s6", L, S6_N, [("sequential", None, ref_modes), ("ours", None, ("fwd", "fb"))])
        print("\n".join(_row(r, rows) for r in rows[-2:]), flush=True)

    report = _report(rows, scaling, machine, args, time.time() - t_start)
    print(report)
    if not args.no_append:
        append_results(report)


def _peer(rows, r, impl):
    return next((x for x in rows if x["kind"] == r["kind"] and x["L"] == r["L"] and x.get("n") == r.get("n")
                 and x["impl"] == impl), None)


def _speedup(rows, r, impl):
    peer = _peer(rows, r, impl)
    if peer is None or peer is r:
        return "—"
    key = "fb" if peer.get("fb") and r.get("fb") else "fwd"
    return f"{peer[key] / r[key]:.1f}×" + ("" if key == "fb" else " (fwd)")


def _row(r, rows):
    name = r["impl"] + (f" (chunk {r['chunk']})" if r.get("chunk") else "")
    speed = _speedup(rows, r, "sequential") + " | " + (_speedup(rows, r, "minimal") if r["kind"] == "ssd" else "—")
    mm = r["mm_gflops"]
    gf = "— | —"
    if r["kind"] == "ssd":
        W = nominal_flops(r["L"], r["n"])
        gf = f"{W / r['fwd'] / 1e9:.1f} ({100 * W / r['fwd'] / 1e9 / mm:.0f} %) | " + (
            f"{3 * W / r['fb'] / 1e9:.1f} ({100 * 3 * W / r['fb'] / 1e9 / mm:.0f} %)" if r.get("fb") else "—")
    return (f"| {r['kind']} | {r['L']} | {r['n']} | {name} | {r['fwd'] * 1e3:.1f} | {_fmt(r.get('fb') and r['fb'] * 1e3, '.1f')} "
            f"| {r['fwd_wall'] * 1e3:.1f} | {_fmt(r.get('fb_wall') and r['fb_wall'] * 1e3, '.1f')} "
            f"| {r['mem_fwd']:.0f} | {_fmt(r.get('mem_fb'))} | {speed} | {gf} | {mm:.1f} |")


HEADER = ("| scan | L | d_state | implementation | fwd ms (CPU) | fwd+bwd ms (CPU) | fwd ms (wall) | fwd+bwd ms (wall) "
          "| peak MiB fwd | peak MiB fwd+bwd | speed-up vs sequential | vs minimal | GFLOP/s fwd (% of matmul) "
          "| GFLOP/s fwd+bwd (% of matmul) | matmul GFLOP/s |\n|" + "---|" * 15 + "\n")


def _targets(rows):
    checks = []
    for r in rows:
        if r["kind"] != "ssd" or r["impl"] != "ours" or r["L"] not in (4096, 16384):
            continue
        peer = _peer(rows, r, "minimal")
        W, mm = nominal_flops(r["L"], r["n"]), r["mm_gflops"]
        checks.append(f"- SSD d_state {r['n']}, L {r['L']}, chunk {r['chunk']}: fwd+bwd {peer['fb'] / r['fb']:.2f}× "
                      f"the minimal algorithm (target >= 1.5); peak fwd+bwd {r['mem_fb']:.0f} vs {peer['mem_fb']:.0f} "
                      f"MiB; {100 * W / r['fwd'] / 1e9 / mm:.0f} % (fwd) and {100 * 3 * W / r['fb'] / 1e9 / mm:.0f} % "
                      f"(fwd+bwd) of matmul throughput (target >= 50 % at L 4096)")
    keys = sorted({(r["n"], r["impl"], r.get("chunk") or 0) for r in rows if r["kind"] == "ssd"})
    for n, impl, q in keys:
        by_L = {r["L"]: r for r in rows if r["kind"] == "ssd" and r["n"] == n and r["impl"] == impl
                and (r.get("chunk") or 0) == q}
        if 4096 in by_L and 16384 in by_L:
            fb = (f", {by_L[16384]['fb'] / by_L[4096]['fb']:.2f} fwd+bwd" if by_L[16384].get("fb")
                  and by_L[4096].get("fb") else "")
            checks.append(f"- SSD {impl}{f' chunk {q}' if q else ''}, d_state {n}: time(16384) / time(4096) = "
                          f"{by_L[16384]['fwd'] / by_L[4096]['fwd']:.2f} fwd{fb} (linear = 4, target <= 4.5)")
    return checks


def _report(rows, scaling, machine, args, elapsed):
    cmd = "python benchmarks/scan.py" + (" --quick" if args.quick else "") + (
        " --only-scaling" if args.only_scaling else "") + (f" --threads {args.threads}" if args.threads != 1 else "") + (
        f" --lengths {args.lengths}" if args.lengths else "") + (f" --d-states {args.d_states}" if args.d_states else "") + (
        f" --chunks {args.chunks}" if args.chunks != "64,128" else "") + (" --no-s6" if args.no_s6 else "") + (
        " --thp" if args.thp else "") + (f" --repeats {args.repeats}" if args.repeats else "")
    alloc = (" Every worker ran with `THP_MEM_ALLOC_ENABLE=1` (PyTorch allocates tensors over 2 MiB on transparent "
             "huge pages)." if args.thp else "")
    if args.only_scaling:
        return (f"\n## scan: linear scaling of the pure-PyTorch SSD ({datetime.date.today().isoformat()})\n\n"
                f"Command: `{cmd}` ({elapsed / 60:.0f} min). Machine: {machine}.{alloc}\n"
                f"Batch 2 × 8 heads, headdim 64; medians of process CPU time over rounds that run both lengths "
                f"back to back in one process.\n\n" + "\n".join(scaling) + "\n")
    return (f"\n## scan: state-space scans on CPU ({datetime.date.today().isoformat()})\n\n"
            f"Command: `{cmd}` ({elapsed / 60:.0f} min). Machine: {machine}.{alloc}\n\n"
            f"Times: medians over interleaved rounds of process CPU time (one intra-op thread); in each round every "
            f"implementation of the row group runs once, and so does a 2048² fp32 torch.matmul, whose throughput is "
            f"the last column. '—' = not run: the sequential reference's backward keeps a state per step and would "
            f"need more than {args.ref_mem_gb:g} GiB. Peak memory: growth of the resident-set high-water mark (VmHWM) "
            f"during the first call in a fresh worker process. GFLOP/s: the nominal chunked-SSD count "
            f"(chunk 64, C·Bᵀ once per group; fwd+bwd = 3× fwd) for every implementation. 'minimal': the minimal "
            f"chunked SSD of the Mamba-2 paper (Listing 1, block 64). A speed-up marked (fwd) compares forward "
            f"times where the other implementation's backward was not run.\n\n"
            + HEADER + "\n".join(_row(r, rows) for r in rows) + "\n\nTargets:\n" + "\n".join(_targets(rows) + scaling)
            + "\n")


if __name__ == "__main__":
    main()
