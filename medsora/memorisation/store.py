"""Features of a list of clips, computed in batches with a progress bar and cached on disk in parts.

Layout under ``<out>/features/<set>-<digest>/``: ``part-00000.npy`` (n×D float32 unit rows)
and ``part-00000.json`` (the clip ids it holds and the clips that could not be read), one
per ``part_size`` clips, each written atomically. ``digest`` hashes the backend's identity
and the clip list, so a rerun reuses every finished part (an interrupted run resumes) and
a different backend or clip list gets its own folder. Search reads the parts one at a
time, so memory does not grow with the number of training clips.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm import tqdm

from medsora.memorisation.clips import ClipRef, read_clip
from medsora.memorisation.features import FeatureBackend

__all__ = ["FeatureStore", "build_store"]


class FeatureStore:
    """The finished feature parts of one clip set."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.parts = sorted(folder.glob("part-*.npy"))

    def iter_parts(self) -> Iterator[tuple[np.ndarray, list[str]]]:
        """``(features n×D, ids)`` part by part; only one part (at most ``part_size`` rows) is in memory at a time."""
        for part in self.parts:
            meta = json.loads(part.with_suffix(".json").read_text(encoding="utf-8"))
            yield np.load(part), meta["ids"]

    def ids(self) -> list[str]:
        return [i for p in self.parts for i in json.loads(p.with_suffix(".json").read_text(encoding="utf-8"))["ids"]]

    def unreadable(self) -> list[str]:
        return [u for p in self.parts for u in json.loads(p.with_suffix(".json").read_text(encoding="utf-8"))["unreadable"]]

    def load(self) -> np.ndarray:
        """All features in memory (for the small sets: samples, held-out clips)."""
        arrays = [np.asarray(f) for f, _ in self.iter_parts()]
        return np.concatenate(arrays) if arrays else np.zeros((0, 0), np.float32)


def _digest(backend: FeatureBackend, refs: list[ClipRef]) -> str:
    h = hashlib.sha256(json.dumps(backend.identity(), sort_keys=True).encode())
    for r in refs:
        h.update(f"{r.id}|{r.path}|{r.start}|{r.stride}|{r.frames}\n".encode())
    return h.hexdigest()[:16]


def _save(folder: Path, number: int, features: np.ndarray, ids: list[str], unreadable: list[str]) -> None:
    stem = folder / f"part-{number:05d}"
    tmp = folder / f".tmp-{number:05d}.npy"
    np.save(tmp, features.astype(np.float32))
    stem.with_suffix(".json").write_text(json.dumps({"ids": ids, "unreadable": unreadable}), encoding="utf-8")
    os.replace(tmp, stem.with_suffix(".npy"))  # the .npy appears last: a part that exists is complete


def build_store(name: str, refs: list[ClipRef], backend: FeatureBackend, out: Path, batch_size: int = 32,
                part_size: int = 4096, progress: bool = True) -> FeatureStore:
    """Compute (or reuse) the features of ``refs``; unreadable clips are skipped and listed, never fatal."""
    from medsora.data.sources import UnreadableVideo

    folder = out / "features" / f"{name}-{_digest(backend, refs)}"
    folder.mkdir(parents=True, exist_ok=True)
    plan = [refs[i:i + part_size] for i in range(0, len(refs), part_size)]
    todo = [n for n in range(len(plan)) if not (folder / f"part-{n:05d}.npy").is_file()]
    bar = tqdm(total=sum(len(plan[n]) for n in todo), desc=f"{name} features ({backend.name})", unit="clip",
               disable=not progress, file=sys.stderr)
    for number in todo:
        rows, ids, bad, pending = [], [], [], []

        def flush():
            if pending:
                rows.append(backend.extract([c for _, c in pending]))
                ids.extend(r.id for r, _ in pending)
                bar.update(len(pending))
                pending.clear()

        for ref in plan[number]:
            known = backend.cached(ref)
            if known is not None:
                flush()
                rows.append(known[None])
                ids.append(ref.id)
                bar.update(1)
                continue
            try:
                clip = read_clip(ref)
            except UnreadableVideo as err:
                bad.append(f"{ref.id}: {err}")
                bar.update(1)
                continue
            if pending and pending[0][1].shape[1:] != clip.shape[1:]:
                flush()  # one batch holds clips of one size
            pending.append((ref, clip))
            if len(pending) >= batch_size:
                flush()
        flush()
        dim = rows[0].shape[1] if rows else 0
        _save(folder, number, np.concatenate(rows) if rows else np.zeros((0, dim), np.float32), ids, bad)
    bar.close()
    return FeatureStore(folder)
