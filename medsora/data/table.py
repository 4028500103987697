"""Per-video state shared by every DataLoader worker: readability, length, stride.

Workers are separate processes, so a plain Python counter incremented inside
one would never reach the training loop. The state lives in shared-memory
tensors instead (``Tensor.share_memory_``): fork and spawn workers map the same
memory, and the main process reads the counts the workers wrote. One byte per
video also makes the counts *unique* files: a bad file seen in every epoch, or
by several workers, counts once.
"""
from __future__ import annotations

import random
import warnings
from typing import Sequence

import torch

from medsora.data.manifest import VideoEntry
from medsora.data.sources import UnreadableVideo, probe_video
from medsora.data.sources.video import count_video_frames

__all__ = ["DataError", "UnreadableVideoWarning", "SourceTable"]


class DataError(RuntimeError):
    """The data set as a whole is unusable (too many unreadable files, nothing left to load)."""


class UnreadableVideoWarning(UserWarning):
    """A video was skipped because it could not be read (the run goes on)."""


class SourceTable:
    """The entries of a data set plus their shared state.

    States: UNSEEN, OK, UNREADABLE, SHORT_SKIPPED (too few frames, skipped by
    config), SHORT_PADDED (too few frames, last frame repeated).
    """

    UNSEEN, OK, UNREADABLE, SHORT_SKIPPED, SHORT_PADDED = range(5)

    def __init__(self, entries: Sequence[VideoEntry], max_bad_fraction: float, hint: str = ""):
        self.entries = list(entries)
        n = len(self.entries)
        self.state = torch.zeros(n, dtype=torch.uint8).share_memory_()
        self.length = torch.full((n,), -1, dtype=torch.int32).share_memory_()  # -1: unknown
        self.stride = torch.zeros(n, dtype=torch.int32).share_memory_()  # 0: not computed yet
        self.fps = torch.zeros(n, dtype=torch.float32)  # source frame rate from the probe; 0: unknown
        self.max_bad_fraction = float(max_bad_fraction)
        self.hint = hint
        self.reasons: dict[int, str] = {}  # this process's view; the state tensor is the shared truth

    def __len__(self) -> int:
        return len(self.entries)

    def count(self, state: int) -> int:
        return int((self.state == state).sum())

    def counters(self) -> dict[str, int]:
        """Unique files per outcome so far: bad_files, short_skipped, short_padded."""
        return {
            "bad_files": self.count(self.UNREADABLE),
            "short_skipped": self.count(self.SHORT_SKIPPED),
            "short_padded": self.count(self.SHORT_PADDED),
        }

    def bad_report(self, limit: int = 10) -> str:
        """The first unreadable files with their reasons (where this process saw them)."""
        bad = torch.nonzero(self.state == self.UNREADABLE).flatten().tolist()
        lines = [f"  {self.entries[i].path}: {self.reasons.get(i, 'unreadable (reason seen in another worker)')}"
                 for i in bad[:limit]]
        if len(bad) > limit:
            lines.append(f"  … and {len(bad) - limit} more")
        return "\n".join(lines)

    def _too_many(self, bad: int, total: int) -> DataError:
        return DataError(
            f"{bad} of {total} videos are unreadable ({bad / total:.1%}), more than data.max_bad_fraction = "
            f"{self.max_bad_fraction:g}. First bad files:\n{self.bad_report()}\n"
            f"Fix or remove them (see `python -m medsora.data check {self.hint}`) or raise data.max_bad_fraction."
        )

    def mark_unreadable(self, index: int, reason: str) -> None:
        """Record a bad file, warn once, and fail when bad files exceed the allowed share of the set."""
        first = int(self.state[index]) != self.UNREADABLE
        self.state[index] = self.UNREADABLE
        self.reasons[index] = reason
        if first:
            warnings.warn(f"skipping unreadable video {self.entries[index].path}: {reason}",
                          UnreadableVideoWarning, stacklevel=2)
        bad = self.count(self.UNREADABLE)
        if bad > self.max_bad_fraction * len(self):
            raise self._too_many(bad, len(self))

    def probe(self, limit: int, seed: int = 0, axis: int = 2, max_pixels: int | None = None,
              lengths: bool = False) -> int:
        """Check headers at start-up (all files, or a seeded sample of ``limit`` when the set is larger).

        Learns frame counts and frame rates on the way. With ``lengths`` every file is checked
        (``limit`` is ignored) and video files whose header has no frame count are counted from
        their packets: the number of clips per video needs every length. Frames over
        ``max_pixels`` make a file unreadable. Returns the number of files checked.
        Raises:
            DataError: the unreadable share of the checked files exceeds max_bad_fraction.
        """
        indices = list(range(len(self)))
        if 0 <= limit < len(indices) and not lengths:
            indices = sorted(random.Random(seed).sample(indices, limit))
        bad = 0
        for index in indices:
            try:
                meta = probe_video(self.entries[index].path, axis=axis, max_pixels=max_pixels)
                if lengths and not meta.get("num_frames") and meta.get("format") == "video":
                    meta["num_frames"] = count_video_frames(self.entries[index].path)
            except UnreadableVideo as err:
                bad += 1
                self.state[index] = self.UNREADABLE
                self.reasons[index] = err.reason
                warnings.warn(f"skipping unreadable video {err.path}: {err.reason}", UnreadableVideoWarning, stacklevel=2)
                continue
            if meta.get("num_frames", 0) > 0:
                self.length[index] = int(meta["num_frames"])
            self.fps[index] = float(meta.get("fps") or 0.0)
        if indices and bad > self.max_bad_fraction * len(indices):
            raise self._too_many(bad, len(indices))
        return len(indices)
