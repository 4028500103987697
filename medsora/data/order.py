"""Seeded, rank-aware sampling whose order survives a resume mid-epoch.

Lightning restores its loop counters from a checkpoint, but a plain ``DataLoader`` restarts the
interrupted epoch from its first batch (only loaders with their own ``state_dict`` resume). Here
the order of epoch ``e`` is ``randperm(seed + e)``, so it can be recomputed at any time, and
``VideoDataModule`` records in every checkpoint which epoch was running and how many of its
batches were trained; on resume it builds the sampler at that epoch with those batches skipped,
before Lightning first iterates the loader (with workers that happens before any callback runs).

Items are drawn as ``(epoch, index)`` keys and :class:`SeededItems` runs the data set's
``__getitem__`` under torch's RNG seeded by that key, so random crops and temporal offsets are
also the same after a resume, in any worker and on any rank.

The sampler shards by rank itself (``Trainer(use_distributed_sampler=False)``): rank r of N
takes global positions r, r+N, ... of the permutation, so step k of N processes with batch B
sees exactly the samples of step k of one process with batch N·B.
"""
from __future__ import annotations

from typing import Any

import hashlib

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, Sampler

__all__ = ["ResumableSampler", "SeededItems", "item_seed"]


def item_seed(seed: int, epoch: int, index: int, *draw: int) -> int:
    """The 63-bit seed of item ``index`` in ``epoch`` of a run seeded ``seed`` (SHA-256 of the key);
    ``draw``: a later draw of an item a balanced epoch repeats (``data.balance``)."""
    digest = hashlib.sha256(repr((int(seed), "item", int(epoch), int(index), *map(int, draw))).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class ResumableSampler(Sampler[tuple[int, int]]):
    """``(epoch, index)`` keys of one rank for the current epoch, optionally after ``skip`` of them.

    Args:
        size: number of items in the data set.
        seed: the order of epoch e is a permutation seeded ``seed + e`` (or 0..size-1 unshuffled).
        shuffle: permute (training) or keep the data set's order (validation).
        drop_last: drop the tail that does not split evenly across ranks (training); otherwise
            pad it by wrapping around, as ``DistributedSampler`` does.
        epoch, skip: the epoch to start in, and how many of this rank's items its first
            iteration leaves out (a resume mid-epoch).
        balance: a :class:`medsora.data.balance.ModalityBalance` giving each epoch's items
            (``data.balance``); a repeated item's later draws are keyed ``(epoch, index, draw)``.
    """

    def __init__(self, size: int, seed: int = 0, shuffle: bool = True, drop_last: bool = True, epoch: int = 0,
                 skip: int = 0, balance=None):
        if size < 1:
            raise ValueError("the data set is empty: check data.root / data.manifest / data.cache")
        self.size, self.seed, self.shuffle, self.drop_last = int(size), int(seed), shuffle, drop_last
        self.balance = balance
        if balance is not None:
            self.size = len(balance)  # items per epoch under the policy
        self.epoch = int(epoch)
        self._skip = int(skip)

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning before each epoch."""
        self.epoch = int(epoch)

    def skip_next(self, count: int) -> None:
        """The next iteration starts after ``count`` of this rank's indices (one resume)."""
        self._skip = int(count)

    def _per_rank(self, world: int) -> int:
        return self.size // world if self.drop_last else -(-self.size // world)

    def __len__(self) -> int:
        return self._per_rank(_rank_world()[1])

    def indices(self, rank: int, world: int) -> list[int]:
        """The full index list of ``rank`` for the current epoch."""
        if self.balance is not None:
            order = torch.tensor(self.balance.order(self.epoch))
        elif self.shuffle:
            order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        else:
            order = torch.arange(self.size)
        total = self._per_rank(world) * world
        if total > self.size:
            order = torch.cat([order, order[: total - self.size]])
        return order[:total][rank::world].tolist()

    def __iter__(self):
        rank, world = _rank_world()
        start, self._skip = self._skip, 0
        if self.balance is not None:
            return iter(self._balanced_keys(rank, world)[start:])
        return iter([(self.epoch, i) for i in self.indices(rank, world)[start:]])

    def _balanced_keys(self, rank: int, world: int) -> list[tuple[int, ...]]:
        from medsora.data.balance import draw_numbers

        order = self.balance.order(self.epoch)
        total = self._per_rank(world) * world
        order = (order * (-(-total // len(order))))[:total]  # wrap-around padding, as in indices()
        keys = [(self.epoch, i) if d == 0 else (self.epoch, i, d) for i, d in zip(order, draw_numbers(order))]
        return keys[rank::world]


class SeededItems(Dataset):
    """Wraps a data set so that item ``(epoch, index)`` is drawn under a seed of its own.

    Args:
        dataset: any map-style data set whose randomness comes from torch's RNG.
        seed: the run seed.
    """

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed = dataset, int(seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, ...]) -> Any:
        epoch, index, *draw = key  # (epoch, index, draw): a later draw of a balanced epoch's repeat
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(item_seed(self.seed, epoch, index, *draw))
            return self.dataset[index]
