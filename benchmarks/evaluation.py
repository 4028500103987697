"""Evaluation benchmarks: memorisation-audit throughput and memory, and downstream utility at demo scale.

1. **Audit feature extraction** (clips/s): the weight-free pixel backend (and the VAE backend with ``--vae``)
   on windows of the demo set's videos, through ``medsora.memorisation.store.build_store`` (decode + features).
2. **Audit search** at 10³, 10⁴, 10⁵ cached training clips: a feature store of random unit rows
   (D = 2048, the pixel backend's width) written in the audit's part format, then the exact
   nearest-neighbour search of 256 samples (``medsora.memorisation.search.nearest``). Each size runs in its
   own process so its peak RSS is its own: memory must stay flat while time grows linearly.
3. **Utility** (``medsora.evaluation.utility``): accuracy on the demo set's real held-out clips of the modality
   classifier trained on real clips, on label-shuffled real clips, and — with ``--samples DIR`` (samples of
   the demo model with their samples.json) — on generated clips.

    python benchmarks/evaluation.py                       # all three, appends to RESULTS.md
    python benchmarks/evaluation.py --samples samples/    # with the demo model's samples in the utility table
    python benchmarks/evaluation.py --quick               # small sizes, nothing written
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine_info import append_results, describe_machine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

import numpy as np  # noqa: E402

DIM = 2048


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def search_worker(size: int, folder: Path, queries: int, repeats: int, write_only: bool = False) -> dict:
    """Write a store of ``size`` random unit rows (if missing); time the search of ``queries`` samples in it (a
    fresh process, so the peak RSS is the search's alone)."""
    from medsora.memorisation.search import nearest
    from medsora.memorisation.store import FeatureStore, _save

    store_dir = folder / f"train-{size}"
    if not store_dir.is_dir():
        store_dir.mkdir(parents=True)
        rng = np.random.default_rng(size)
        for number, start in enumerate(range(0, size, 4096)):
            n = min(4096, size - start)
            x = rng.standard_normal((n, DIM), dtype=np.float32)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            _save(store_dir, number, x, [f"c{start + i}" for i in range(n)], [])
    if write_only:
        return {"size": size}
    base = _rss_mb()
    q = np.random.default_rng(0).standard_normal((queries, DIM), dtype=np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    times = []
    for _ in range(repeats):
        store = FeatureStore(store_dir)
        began = time.perf_counter()
        nearest(q, store.iter_parts(), k=5)
        times.append(time.perf_counter() - began)
    return {"size": size, "seconds": statistics.median(times), "peak_rss_mb": _rss_mb(), "rss_before_mb": base}


def bench_search(sizes, queries, repeats, folder: Path) -> list[dict]:
    rows = []
    for size in sizes:
        subprocess.run([sys.executable, __file__, "--search-worker", str(size), "--folder", str(folder),
                        "--write-only"], capture_output=True, text=True, check=True)
        out = subprocess.run([sys.executable, __file__, "--search-worker", str(size), "--folder", str(folder),
                              "--queries", str(queries), "--repeats", str(repeats)],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"search {size}: {rows[-1]}", file=sys.stderr)
    return rows


def bench_features(num_videos: int, repeats: int, vae: str | None, folder: Path) -> list[dict]:
    from medsora.data.demo import ensure_demo
    from medsora.memorisation.clips import from_data_root
    from medsora.memorisation.features import PixelFeatures, VAEFeatures
    from medsora.memorisation.store import build_store

    sets = from_data_root(ensure_demo(), frames=17, stride=1, clips_per_video=2)
    refs = sets.train[: 2 * num_videos]
    backends = [PixelFeatures()] + ([VAEFeatures(vae, 17, 64)] if vae else [])
    rows = []
    for backend in backends:
        times = []
        for r in range(repeats):
            began = time.perf_counter()
            build_store(f"bench{r}", refs, backend, folder / f"features-{backend.name}-{r}", progress=False)
            times.append(time.perf_counter() - began)
        rows.append({"backend": backend.name, "clips": len(refs), "seconds": statistics.median(times),
                     "clips_per_s": len(refs) / statistics.median(times)})
        print(f"features {rows[-1]}", file=sys.stderr)
    return rows


def bench_utility(samples: str | None, steps: int) -> dict:
    import torch

    from medsora.data.demo import ensure_demo
    from medsora.evaluation.utility.classifier import fit_and_score
    from medsora.evaluation.utility.clips import ClipSpec, generated_clips, real_clips

    spec = ClipSpec()
    began = time.perf_counter()
    train, test = real_clips(ensure_demo(), "modality", spec, progress=False)
    runs = {"real": (train, False), "real, labels shuffled": (train, True)}
    if samples:
        runs["generated (demo model)"] = (generated_clips(samples, "modality", spec, progress=False), False)
    classes = sorted({str(v) for v in train.labels + test.labels})
    out = {"test_clips": len(test), "test_videos": len(set(test.videos)), "rows": []}
    counts = {c: test.labels.count(c) for c in classes}
    out["chance"] = max(counts.values()) / len(test)
    for name, (clip_set, shuffle) in runs.items():
        t = time.perf_counter()
        torch.manual_seed(0)
        result = fit_and_score(clip_set.clips, [str(v) for v in clip_set.labels], test.clips,
                               [str(v) for v in test.labels], classes, steps=steps, seed=0, shuffle_labels=shuffle)
        out["rows"].append({"trained on": name, "train clips": len(clip_set), "accuracy": result.score,
                            "seconds": time.perf_counter() - t})
        print(f"utility {out['rows'][-1]}", file=sys.stderr)
    out["seconds"] = time.perf_counter() - began
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--sizes", default="1000,10000,100000")
    p.add_argument("--queries", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--feature-videos", type=int, default=50)
    p.add_argument("--vae", help="also time the VAE backend with this checkpoint")
    p.add_argument("--samples", help="generated samples of the demo model (with samples.json) for the utility row")
    p.add_argument("--utility-steps", type=int, default=300)
    p.add_argument("--skip", default="", help="comma list of parts to skip: features,search,utility")
    p.add_argument("--folder", help="working folder (default: a temporary one)")
    p.add_argument("--search-worker", type=int, help=argparse.SUPPRESS)
    p.add_argument("--write-only", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.search_worker:
        print(json.dumps(search_worker(args.search_worker, Path(args.folder), args.queries, args.repeats,
                                       args.write_only)))
        return
    if args.quick:
        args.sizes, args.repeats, args.feature_videos, args.utility_steps = "1000,4000", 1, 8, 30
    sizes = [int(s) for s in args.sizes.split(",")]
    skip = set(args.skip.split(",")) - {""}
    tmp = tempfile.TemporaryDirectory(prefix="bench-eval-")
    folder = Path(args.folder or tmp.name)
    uptime_before = os.getloadavg()
    lines = [f"## Evaluation: memorisation audit and downstream utility (`python benchmarks/evaluation.py "
             f"{' '.join(sys.argv[1:])}`)".rstrip(), "", describe_machine(),
             f"Load average (1/5/15 min) at the start: {uptime_before[0]:.1f} / {uptime_before[1]:.1f} / "
             f"{uptime_before[2]:.1f}; the timings below are wall-clock on this shared machine.", ""]
    if "features" not in skip:
        feats = bench_features(args.feature_videos, args.repeats, args.vae, folder)
        lines += ["Audit feature extraction (decode + features, demo-set windows of 17 frames; median of "
                  f"{args.repeats}):", "", "| backend | clips | seconds | clips/s |", "|---|---:|---:|---:|"]
        lines += [f"| {r['backend']} | {r['clips']} | {r['seconds']:.2f} | {r['clips_per_s']:.1f} |" for r in feats]
        lines.append("")
    if "search" not in skip:
        rows = bench_search(sizes, args.queries, args.repeats, folder)
        lines += [f"Audit search: {args.queries} samples against N cached training clips (D = {DIM}, exact, "
                  f"chunked matmul, top-5; one process per N; median of {args.repeats}):", "",
                  "| N training clips | seconds | training clips/s | peak RSS (MB) | RSS before the search (MB) |",
                  "|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['size']} | {r['seconds']:.3f} | {r['size'] / r['seconds']:.0f} | {r['peak_rss_mb']:.0f} | "
                  f"{r['rss_before_mb']:.0f} |" for r in rows]
        lines.append("")
    if "utility" not in skip:
        u = bench_utility(args.samples, args.utility_steps)
        lines += [f"Utility at demo scale: modality classifier (3-D CNN, {args.utility_steps} steps, seed 0) tested "
                  f"on {u['test_clips']} clips of the {u['test_videos']} real held-out demo videos (chance "
                  f"{u['chance']:.2f}):", "", "| trained on | train clips | accuracy | seconds |",
                  "|---|---:|---:|---:|"]
        lines += [f"| {r['trained on']} | {r['train clips']} | {r['accuracy']:.3f} | {r['seconds']:.1f} |"
                  for r in u["rows"]]
        if not args.samples:
            lines += ["", "(no --samples: the row trained on the demo model's samples was not measured)"]
    end = os.getloadavg()
    lines += ["", f"Load average at the end: {end[0]:.1f} / {end[1]:.1f} / {end[2]:.1f}."]
    text = "\n".join(lines)
    print(text)
    if not args.quick:
        append_results(text)


if __name__ == "__main__":
    main()
