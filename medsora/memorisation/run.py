"""One memorisation audit: features of training, held-out and generated clips, nearest neighbours, threshold."""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from medsora.memorisation.calibrate import flag_fraction, threshold_from_held_out
from medsora.memorisation.clips import ClipRef, from_data_root, from_samples, read_clip, training_sets
from medsora.memorisation.features import build_backend
from medsora.memorisation.report import audit_markdown, copy_unflagged, write_contact_sheet, write_csv
from medsora.memorisation.search import faiss_available, nearest
from medsora.memorisation.store import build_store

__all__ = ["AuditSettings", "run_audit"]


@dataclasses.dataclass
class AuditSettings:
    features: str = "auto"  # auto | pixels | vae | encoder
    vae: str | None = None
    encoder: str | None = None
    held_out: str | None = None  # a folder of real held-out videos (default: the training set's own split)
    quantile: float = 0.01
    k: int = 5
    clip_frames: int = 17
    clip_stride: int = 1
    clips_per_video: int = 4
    batch_size: int = 32
    sheet_pairs: int = 16
    replicates: int = 1000
    seed: int = 0
    device: str = "cpu"
    progress: bool = True


def run_audit(train: str | Path, samples: str | Path, out: str | Path, settings: AuditSettings | None = None,
              filter_out: str | Path | None = None) -> dict:
    """Audit the generated clips of ``samples`` against ``train``; writes ``out/{audit.csv,audit.json,audit.md,
    closest_pairs.png}`` and returns the summary."""
    s = settings or AuditSettings()
    began = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sets = training_sets(train, frames=s.clip_frames, stride=s.clip_stride, clips_per_video=s.clips_per_video,
                         seed=s.seed)
    held_out, held_source = sets.held_out, sets.held_out_source
    if s.held_out:
        extra = from_data_root(s.held_out, s.clip_frames, s.clip_stride, s.clips_per_video, held_out_fraction=0)
        held_out, held_source = extra.train + extra.held_out, f"--held-out {s.held_out}"
    sample_refs = from_samples(samples)
    backend = build_backend(s.features, vae=s.vae, encoder=s.encoder, clip_frames=sets.clip_frames,
                            clip_size=sets.clip_size, cache_root=sets.cache_root, device=s.device)
    store = lambda name, refs: build_store(name, refs, backend, out, s.batch_size, progress=s.progress)  # noqa: E731
    train_store = store("train", sets.train)
    held_store = store("held_out", held_out)
    sample_store = store("samples", sample_refs)

    held_d, _ = nearest(held_store.load(), train_store.iter_parts(), k=1) if held_store.ids() else (np.zeros((0, 1)), [])
    threshold = threshold_from_held_out(held_d[:, 0], s.quantile)
    sample_ids = sample_store.ids()
    if not sample_ids:
        raise ValueError(f"--samples {samples}: no generated clip could be read")
    dist, nn_ids = nearest(sample_store.load(), train_store.iter_parts(), k=s.k)
    flagged = dist[:, 0] < threshold
    paths = {r.id: r.path for r in sample_refs}
    rows = []
    for i, sid in enumerate(sample_ids):
        row = {"sample": sid, "file": paths[sid], "nearest_train": nn_ids[i][0], "distance": float(dist[i, 0]),
               "threshold": threshold, "ratio_to_threshold": float(dist[i, 0] / threshold) if threshold > 0 else None,
               "flagged": bool(flagged[i])}
        for j in range(1, dist.shape[1]):
            row[f"train_{j + 1}"], row[f"distance_{j + 1}"] = nn_ids[i][j], float(dist[i, j])
        rows.append(row)
    write_csv(out / "audit.csv", rows)

    train_refs = {r.id: r for r in sets.train}
    sheet = None
    order = np.argsort(dist[:, 0])[: s.sheet_pairs]
    pairs = []
    for i in order:
        try:
            pairs.append((sample_ids[i], read_clip(ClipRef(sample_ids[i], paths[sample_ids[i]])), nn_ids[i][0],
                          read_clip(train_refs[nn_ids[i][0]]), float(dist[i, 0])))
        except Exception as err:  # noqa: BLE001 - a sheet row is optional; the CSV has every pair
            print(f"[medsora.audit] contact sheet: left out {sample_ids[i]}: {err}")
    if pairs:
        sheet = write_contact_sheet(out / "closest_pairs.png", pairs)

    unreadable = train_store.unreadable() + held_store.unreadable() + sample_store.unreadable()
    summary = {
        "train": {"source": str(train), "clips": len(sets.train), "indexed": len(train_store.ids()),
                  "unreadable": len(train_store.unreadable())},
        "held_out": {"source": held_source, "clips": len(held_out), "compared": int(held_d.shape[0]),
                     "median": float(np.median(held_d[:, 0])), "unreadable": len(held_store.unreadable())},
        "samples": {"source": str(samples), "clips": len(sample_refs), "compared": len(sample_ids),
                    "unreadable": len(sample_store.unreadable())},
        "features": backend.identity(), "search": "faiss IndexFlatL2" if faiss_available() else "chunked matmul",
        "quantile": s.quantile, "threshold": threshold,
        "flagged": flag_fraction(flagged, s.replicates, seed=s.seed),
        "csv": str(out / "audit.csv"), "contact_sheet": str(sheet) if sheet else None,
        "unreadable": unreadable, "seconds": round(time.perf_counter() - began, 1),
    }
    if filter_out is not None:
        root = Path(samples)
        summary["filter"] = {"out": str(filter_out), "kept": len(copy_unflagged(rows, root, paths, Path(filter_out)))}
    (out / "audit.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    (out / "audit.md").write_text(audit_markdown(summary) + "\n", encoding="utf-8")
    return summary
