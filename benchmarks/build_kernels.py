"""Build the optional CUDA kernels (``mamba_ssm``'s ``selective_scan_cuda``, ``causal_conv1d_cuda``) from
their source distributions, for this machine's GPU only.

``pip install medsora[kernels]`` is the normal route. This script is for a GPU machine that cannot
fetch or build the wheels that way (no network; a torch build the wheels do not match): it compiles the
extensions with ``torch.utils.cpp_extension.load`` for the local compute capability alone (minutes on
16 cores instead of an hour for nine architectures) and leaves the packages importable from one folder:

    python benchmarks/build_kernels.py mamba_ssm-2.3.2.post1.tar.gz causal_conv1d-1.7.0.tar.gz --out /tmp/kernels
    export PYTHONPATH=/tmp/kernels:$PYTHONPATH      # then: import mamba_ssm, causal_conv1d

The Mamba-2 SSD kernels (``mamba_chunk_scan_combined``) are Triton and need no compilation; importing
``mamba_ssm`` still needs ``selective_scan_cuda``.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import tarfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

NVCC_FLAGS = ["-O3", "-std=c++17", "-U__CUDA_NO_HALF_OPERATORS__", "-U__CUDA_NO_HALF_CONVERSIONS__",
              "-U__CUDA_NO_BFLOAT16_OPERATORS__", "-U__CUDA_NO_BFLOAT16_CONVERSIONS__",
              "-U__CUDA_NO_BFLOAT162_OPERATORS__", "-U__CUDA_NO_BFLOAT162_CONVERSIONS__",
              "--expt-relaxed-constexpr", "--expt-extended-lambda", "--use_fast_math", "-lineinfo"]

# extension name -> (python package in the sdist, sources relative to the sdist root)
EXTENSIONS = {
    "selective_scan_cuda": ("mamba_ssm", ["csrc/selective_scan/selective_scan.cpp"] + [
        f"csrc/selective_scan/selective_scan_{part}.cu" for part in (
            "fwd_fp32", "fwd_fp16", "fwd_bf16", "bwd_fp32_real", "bwd_fp32_complex", "bwd_fp16_real",
            "bwd_fp16_complex", "bwd_bf16_real", "bwd_bf16_complex")]),
    "causal_conv1d_cuda": ("causal_conv1d", ["csrc/causal_conv1d.cpp", "csrc/causal_conv1d_fwd.cu",
                                             "csrc/causal_conv1d_bwd.cu", "csrc/causal_conv1d_update.cu"]),
}


def _unpack(sdist: Path, dest: Path) -> Path:
    with tarfile.open(sdist) as tar:
        top = tar.getnames()[0].split("/")[0]
        tar.extractall(dest, filter="data")
    return dest / top


def _build(name: str, root: str, out: str, jobs: int) -> str:
    import torch
    from torch.utils.cpp_extension import load
    os.environ["MAX_JOBS"] = str(jobs)
    major, minor = torch.cuda.get_device_capability()
    arch = f"{major}{minor}"
    sources = [os.path.join(root, s) for s in EXTENSIONS[name][1]]
    build_dir = os.path.join(out, f"build_{name}")
    os.makedirs(build_dir, exist_ok=True)
    t0 = time.time()
    load(name=name, sources=sources, build_directory=build_dir, verbose=False,
         extra_cflags=["-O3", "-std=c++17"],
         extra_cuda_cflags=NVCC_FLAGS + ["-gencode", f"arch=compute_{arch},code=sm_{arch}"],
         extra_include_paths=[os.path.dirname(sources[-1])])
    shutil.copy2(os.path.join(build_dir, f"{name}.so"), os.path.join(out, f"{name}.so"))
    return f"{name}: built for sm_{arch} in {time.time() - t0:.0f} s"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sdists", nargs="+", type=Path, help="mamba_ssm-*.tar.gz and/or causal_conv1d-*.tar.gz")
    ap.add_argument("--out", type=Path, required=True, help="folder to put on PYTHONPATH afterwards")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 4, help="parallel compiler jobs in all")
    args = ap.parse_args(argv)
    import torch
    if not torch.cuda.is_available():
        print("build_kernels: no CUDA device; the kernels are built for the local GPU's architecture", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    todo = []
    for sdist in args.sdists:
        root = _unpack(sdist, args.out / "src")
        for name, (package, _) in EXTENSIONS.items():
            if (root / package).is_dir():
                shutil.copytree(root / package, args.out / package, dirs_exist_ok=True)
                todo.append((name, str(root)))
    if not todo:
        print("build_kernels: none of the sdists holds mamba_ssm or causal_conv1d", file=sys.stderr)
        return 2
    # One process per extension, sharing the cores by their number of sources.
    total = sum(len(EXTENSIONS[n][1]) for n, _ in todo)
    with ProcessPoolExecutor(len(todo), mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_build, n, r, str(args.out), max(1, args.jobs * len(EXTENSIONS[n][1]) // total))
                   for n, r in todo]
        for f in futures:
            print(f.result(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
