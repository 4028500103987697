"""Modality balancing of a training epoch (Bora's two stages), as an index list per epoch.

``data.balance``:

* ``none`` — every item once per epoch (the plain shuffled order);
* ``modality`` — Bora's stage 1: every modality is drawn equally often. An epoch keeps the
  data set's length (rounded down to a multiple of the number of modalities) and gives each
  modality ``len // M`` draws: a small modality's videos are drawn several times (each draw
  a different random clip, since items are seeded per draw), a large modality's videos
  are subsampled, and a different subset is drawn every epoch;
* ``smallest`` — Bora's stage 2: every modality is down-sampled to the size of the smallest
  one. The kept videos are a *fixed* subset chosen by the run seed (Bora "did not utilise all
  the data"), shuffled anew every epoch.

The order is a pure function of ``(seed, epoch)``, so the sampler can recompute it after a
resume, and every rank computes the same list before taking its share.
"""
from __future__ import annotations

from collections import Counter
from typing import Sequence

import torch

__all__ = ["BALANCE_POLICIES", "ModalityBalance", "draw_numbers", "item_modalities"]

BALANCE_POLICIES = ("none", "modality", "smallest")


def _perm(n: int, *key: int) -> torch.Tensor:
    """A permutation of ``0..n-1`` seeded by ``key`` (integers mixed into one 63-bit seed)."""
    seed = 0
    for k in key:
        seed = (seed * 1_000_003 + int(k) + 1) % (1 << 63)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


class ModalityBalance:
    """The items of one epoch under a balancing policy.

    Args:
        modalities: the modality of every item of the data set, by index.
        policy: ``none``, ``modality`` or ``smallest`` (module docstring).
        seed: the run seed.
    """

    def __init__(self, modalities: Sequence[str], policy: str, seed: int):
        if policy not in BALANCE_POLICIES:
            raise ValueError(f"data.balance={policy!r}: use one of {list(BALANCE_POLICIES)}")
        if not modalities:
            raise ValueError("data.balance: the data set is empty")
        self.policy, self.seed = policy, int(seed)
        self.names = sorted(set(modalities))
        self.groups = [[i for i, m in enumerate(modalities) if m == name] for name in self.names]
        self.size = len(modalities)
        if policy == "modality":
            self.quota = self.size // len(self.names)
        elif policy == "smallest":
            self.quota = min(len(g) for g in self.groups)
            # the fixed subset of each modality kept for the whole run
            self.kept = [[g[j] for j in _perm(len(g), self.seed, 7919, k)[: self.quota].tolist()]
                         for k, g in enumerate(self.groups)]
        else:
            self.quota = 0

    def __len__(self) -> int:
        """Items per epoch (the same every epoch)."""
        return self.size if self.policy == "none" else self.quota * len(self.names)

    def counts(self) -> dict[str, int]:
        """Draws per modality in one epoch."""
        if self.policy == "none":
            return {name: len(g) for name, g in zip(self.names, self.groups)}
        return {name: self.quota for name in self.names}

    def order(self, epoch: int) -> list[int]:
        """Data-set indices of epoch ``epoch``, in training order (repeats possible under ``modality``)."""
        if self.policy == "none":  # the sampler's own unbalanced order
            return torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + epoch)).tolist()
        if self.policy == "smallest":
            pool = [i for kept in self.kept for i in kept]
        else:
            pool = []
            for k, group in enumerate(self.groups):
                cycles = -(-self.quota // len(group))  # whole passes over the group, a new order each
                drawn = [group[j] for c in range(cycles) for j in _perm(len(group), self.seed, epoch, k, c).tolist()]
                pool.extend(drawn[: self.quota])
        return [pool[j] for j in _perm(len(pool), self.seed, epoch, -1).tolist()]


def draw_numbers(order: Sequence[int]) -> list[int]:
    """For each position of ``order``, how many times its index appeared before (0 for a first draw)."""
    seen: Counter = Counter()
    out = []
    for i in order:
        out.append(seen[i])
        seen[i] += 1
    return out


def item_modalities(dataset) -> list[str]:
    """The modality of every item of a training data set (video folder or encode cache), by index.

    Reads the source table of a :class:`medsora.data.dataset.VideoClipDataset` or the record
    headers of a :class:`medsora.data.cache.CacheDataset` (no clip is decoded).
    """
    if hasattr(dataset, "table") and hasattr(dataset, "indices"):
        return [dataset.table.entries[i].modality or "" for i in dataset.indices]
    if hasattr(dataset, "shards"):
        import json

        from safetensors import safe_open

        names: list[str] = []
        for shard in dataset.shards:
            with safe_open(str(shard), framework="pt") as fh:
                names.extend(r.get("modality") or "" for r in json.loads(fh.metadata()["records"]))
        return names[: len(dataset)]
    raise TypeError(f"data.balance: cannot read the modalities of a {type(dataset).__name__}; "
                    "use data.balance=none")
