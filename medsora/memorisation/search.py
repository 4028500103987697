"""Exact k-nearest-neighbour search of query features among training features held in parts.

A matrix multiply per block (``|q − x|² = |q|² + |x|² − 2 q·x``), keeping a running top-k,
so only one block of training features is in memory at a time: memory is flat in the
number of training clips and time is linear. FAISS's exact ``IndexFlatL2`` does the same
per block when installed (faster on many cores); results are identical up to float
rounding.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import torch

__all__ = ["nearest", "faiss_available"]


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401  (only whether it imports)
    except ImportError:
        return False
    return True


def _topk_block(q: torch.Tensor, x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    d2 = (q.square().sum(1, keepdim=True) + x.square().sum(1)[None] - 2 * q @ x.T).clamp_min(0)
    k = min(k, x.shape[0])
    values, index = torch.topk(d2, k, dim=1, largest=False)
    return values, index


def nearest(queries: np.ndarray, parts: Iterable[tuple[np.ndarray, list[str]]], k: int = 1, block: int = 16384,
            use_faiss: bool | None = None) -> tuple[np.ndarray, list[list[str]]]:
    """Distances Q×k (Euclidean, ascending) and ids of each query's k nearest training rows.

    parts: ``(features n×D, ids)`` blocks (e.g. :meth:`FeatureStore.iter_parts`), each split further into
    ``block`` rows.
    """
    use_faiss = faiss_available() if use_faiss is None else use_faiss
    q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
    best = torch.full((q.shape[0], k), float("inf"))
    best_ids = np.full((q.shape[0], k), "", dtype=object)
    for features, ids in parts:
        ids = np.asarray(ids, dtype=object)
        for start in range(0, features.shape[0], block):
            x = np.ascontiguousarray(features[start:start + block], dtype=np.float32)
            if x.shape[0] == 0:
                continue
            if use_faiss:
                import faiss

                index = faiss.IndexFlatL2(x.shape[1])
                index.add(x)
                d2, idx = index.search(q.numpy(), min(k, x.shape[0]))
                d2, idx = torch.from_numpy(d2).clamp_min(0), torch.from_numpy(idx)
            else:
                d2, idx = _topk_block(q, torch.from_numpy(x.copy() if not x.flags.writeable else x), k)
            merged = torch.cat([best, d2], 1)
            merged_ids = np.concatenate([best_ids, ids[start + idx.numpy()]], 1)
            order = torch.argsort(merged, dim=1)[:, :k]
            best = torch.gather(merged, 1, order)
            best_ids = np.take_along_axis(merged_ids, order.numpy(), 1)
    return best.sqrt().numpy(), [list(row) for row in best_ids]
