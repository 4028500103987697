"""Collect a sweep's results from each variant's TensorBoard log into a table and a plot."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Iterable

# Scalar tags written by the training modules (medsora/training/diffusion_module.py, medsora/training/callbacks.py).
# Each column takes the first tag of its list that the log has.
# ``loss`` includes the alignment term where OFRA is on; ``denoise`` is the diffusion loss alone,
# the figure to compare variants that differ in OFRA.
TAGS: dict[str, tuple[str, ...]] = {
    "train_loss": ("train/loss", "train/loss_epoch", "train/loss_step"),
    "val_loss": ("val/loss", "val/loss_epoch"),
    "train_denoise": ("train/denoise",),
    "val_denoise": ("val/denoise",),
    "step_time_s": ("perf/step_time_s",),
    "step_cpu_s": ("perf/step_cpu_s",),
    "peak_mem_mb": ("perf/peak_mem_mb",),
}
CURVE_TAGS = ("train/denoise", "train/loss", "train/loss_step")
# step_time_s is wall time per step, step_cpu_s the process's CPU time per step (what a shared machine's load
# does not inflate, with one thread per child); cpu_s is the whole child's CPU time (start-up, validation and
# end-of-run samples included).
COLUMNS = ("variant", "status", "params_m", "gflops", "train_loss", "val_loss", "train_denoise", "val_denoise",
           "step_time_s", "step_cpu_s", "peak_mem_mb", "cpu_s")
# Training losses are single noisy steps: the final value is the mean of the last 10 % of the logged points.
TAIL_FRACTION = 0.1


def read_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """All scalar series under ``log_dir`` (every event file, merged): tag -> [(step, value)]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    series: dict[str, list[tuple[int, float]]] = {}
    for event_file in sorted(Path(log_dir).rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(event_file), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags().get("scalars", []):
            series.setdefault(tag, []).extend((e.step, float(e.value)) for e in acc.Scalars(tag))
    for tag in series:
        series[tag].sort(key=lambda item: item[0])
    return series


def _final(series: dict[str, list[tuple[int, float]]], tags: Iterable[str], reduce: str = "last") -> float | None:
    for tag in tags:
        values = [v for _, v in series.get(tag, []) if math.isfinite(v)]
        if values:
            if reduce == "median":
                values = sorted(values)
                return values[len(values) // 2]
            if reduce == "max":
                return max(values)
            if reduce == "tail":
                tail = values[-max(1, int(len(values) * TAIL_FRACTION)):]
                return sum(tail) / len(tail)
            return values[-1]
    return None


def summarize_run(log_dir: Path) -> dict[str, Any]:
    """Final train loss (tail mean), last val loss, median step time and peak memory of one run's log."""
    series = read_scalars(log_dir)
    return {
        "train_loss": _final(series, TAGS["train_loss"], "tail"),
        "val_loss": _final(series, TAGS["val_loss"]),
        "train_denoise": _final(series, TAGS["train_denoise"], "tail"),
        "val_denoise": _final(series, TAGS["val_denoise"]),
        "step_time_s": _final(series, TAGS["step_time_s"], "median"),
        "step_cpu_s": _final(series, TAGS["step_cpu_s"], "median"),
        "peak_mem_mb": _final(series, TAGS["peak_mem_mb"], "max"),
    }


def loss_curve(log_dir: Path) -> list[tuple[int, float]]:
    """The training curve of a run: the denoising loss where logged, else the total loss."""
    series = read_scalars(log_dir)
    for tag in CURVE_TAGS:
        if series.get(tag):
            return series[tag]
    return []


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def cpu_footer(rows: list[dict[str, Any]], prepare_cpu: Iterable[float], jobs: int = 1) -> str:
    """One line: the CPU seconds of the variants' children and of the VAE/cache preparation, and their sum."""
    def total(values) -> float:
        return sum(v for v in values if isinstance(v, (int, float)) and math.isfinite(v))

    variants = total(row.get("cpu_s") for row in rows)
    prep = total(prepare_cpu)
    return (f"CPU time (children's user + system): VAE + encode cache {prep:.0f} s, variants {variants:.0f} s, "
            f"total {prep + variants:.0f} s = {(prep + variants) / 60:.1f} CPU-min ({jobs} at a time).")


def write_tables(rows: list[dict[str, Any]], out_dir: Path, footer: str = "") -> tuple[Path, Path]:
    """Write ``results.csv`` and ``results.md`` (then ``footer``); metric columns beyond COLUMNS are appended."""
    extra = sorted({k for row in rows for k in row} - set(COLUMNS))
    columns = list(COLUMNS) + extra
    csv_path, md_path = out_dir / "results.csv", out_dir / "results.md"
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c) for c in columns})
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(row.get(c)) for c in columns) + " |" for row in rows]
    md_path.write_text("\n".join(lines) + "\n" + (f"\n{footer}\n" if footer else ""))
    return csv_path, md_path


def plot_curves(curves: dict[str, list[tuple[int, float]]], path: Path, title: str) -> Path:
    """One PNG with the training-loss curve of every variant (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for name, points in curves.items():
        if points:
            steps, values = zip(*points)
            ax.plot(steps, values, label=name, linewidth=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (train/denoise where logged)")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if any(curves.values()):
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def load_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}
