"""What every benchmark writes into RESULTS.md: the machine line beside its figures, and the append itself."""
from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Optional

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    info = Path("/proc/cpuinfo")
    if info.exists():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def describe_machine(threads: Optional[int] = None, device: str = "cpu") -> str:
    """CPU, cores, torch threads and version, Python, GPU (when ``device`` is cuda) and the load average."""
    import torch

    threads = torch.get_num_threads() if threads is None else threads
    gpu = torch.cuda.get_device_name(0) if device == "cuda" and torch.cuda.is_available() else "no GPU used"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu_model()}, {os.cpu_count()} cores, {threads} torch thread(s), torch {torch.__version__}, "
            f"Python {platform.python_version()}, {gpu}; load average {load:.1f} at the time; shared, noisy machine")


def append_results(section: str, path: Optional[str | os.PathLike] = None) -> Path:
    """Append one benchmark's section to ``RESULTS.md`` (or ``path``), a blank line before it.

    One ``open(..., "a")`` write, so benchmarks run side by side do not overwrite each other's sections.
    """
    path = Path(path) if path is not None else RESULTS
    lead = "\n" if path.exists() and path.stat().st_size else "# Benchmark results\n\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(lead + section.strip("\n") + "\n")
    return path
