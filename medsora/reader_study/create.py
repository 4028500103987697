"""``create``: draw a balanced, shuffled, seeded set of real and generated clips into a study database.

Every candidate is probed first (header and first frame); unreadable clips and clips shorter than
the study's length are reported and left out. From what remains, ``n/2`` real and ``n/2``
generated clips are drawn with ``random.Random(seed)`` (with ``per_modality``: the same number of
each origin in every modality both sets have), each is transcoded once (see
:mod:`medsora.reader_study.transcode`; a clip that fails there is reported and replaced by the next
one drawn), and the items are shuffled. The database is written beside ``out`` and renamed into place
only when complete, so an interrupted ``create`` leaves no half study behind.
"""
from __future__ import annotations

import os
import random
import secrets
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from tqdm import tqdm

from medsora.data.sources import probe_video
from medsora.data.sources.formats import UnreadableVideo
from medsora.reader_study.clip_sets import Clip, list_clips
from medsora.reader_study.db import connect, init_schema
from medsora.reader_study.questions import Question, questions_to_json
from medsora.reader_study.transcode import ClipTooShort, transcode

__all__ = ["StudySpec", "CreateReport", "create_study"]

ORIGINS = ("real", "generated")


@dataclass(frozen=True)
class StudySpec:
    """How to build a study (the ``create`` command's options)."""

    real: Path
    fake: Path
    out: Path
    questions: list[Question]
    n: int = 100
    seed: int = 0
    per_modality: bool = False
    size: int = 256
    frames: int = 16
    fps: int = 8
    crf: int = 18
    title: str = "Reader study"

    def check(self) -> None:
        """Raise ValueError naming the option for a value that cannot work."""
        if self.n < 2 or self.n % 2:
            raise ValueError(f"--n {self.n}: an even number of clips >= 2 (half real, half generated)")
        if self.size < 16 or self.size % 2:
            raise ValueError(f"--size {self.size}: an even number of pixels >= 16 (H.264 in yuv420p needs even sides)")
        if self.frames < 1 or not 1 <= self.fps <= 120 or not 0 <= self.crf <= 51:
            raise ValueError(f"--frames {self.frames} / --fps {self.fps} / --crf {self.crf}: frames >= 1, "
                             "fps in 1..120, crf in 0..51")
        if self.out.exists():
            raise ValueError(f"--out {self.out}: already exists; a study database is never overwritten "
                             "(it may hold answers): choose another path or delete it")


@dataclass
class CreateReport:
    """What ``create`` did: chosen counts per (modality, origin), and clips left out with why."""

    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    left_out: list[tuple[str, str]] = field(default_factory=list)   # (clip, reason)
    ignored_modalities: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _probe(clips: list[Clip], frames: int, report: CreateReport, progress: bool) -> dict[Clip, int]:
    """``{clip: frame count (0 = unknown)}`` of the clips worth drawing; the others go to the report."""
    usable = {}
    for clip in tqdm(clips, desc="checking clips", unit="clip", disable=not progress, file=sys.stderr):
        try:
            total = int(probe_video(clip.path).get("num_frames") or 0)
        except UnreadableVideo as err:
            report.left_out.append((f"{clip.origin}: {clip.key}", f"unreadable ({err.reason})"))
            continue
        if total and total < frames:
            report.left_out.append((f"{clip.origin}: {clip.key}", f"{total} frames < --frames {frames}"))
            continue
        usable[clip] = total
    return usable


def _strata(spec: StudySpec, usable: dict[Clip, int], report: CreateReport) -> dict[tuple[str, str], list[Clip]]:
    """Candidates per (modality, origin), sorted by key; one modality ``all`` unless ``per_modality``."""
    strata: dict[tuple[str, str], list[Clip]] = defaultdict(list)
    for clip in usable:
        strata[(clip.modality if spec.per_modality else "all", clip.origin)].append(clip)
    if spec.per_modality:
        present = {origin: {m for m, o in strata if o == origin} for origin in ORIGINS}
        shared = present["real"] & present["generated"]
        report.ignored_modalities = sorted((present["real"] | present["generated"]) - shared)
        if not shared:
            raise ValueError(f"--per-modality: no modality has both real and generated clips (real: "
                             f"{sorted(present['real'])}, generated: {sorted(present['generated'])}); put clips "
                             "in folders named by modality, or drop --per-modality")
        strata = {k: v for k, v in strata.items() if k[0] in shared}
    for key in strata:
        strata[key].sort(key=lambda c: c.key)
    return dict(sorted(strata.items()))


def _quota(spec: StudySpec, strata: dict) -> int:
    modalities = sorted({m for m, _ in strata})
    if spec.n % (2 * len(modalities)):
        m = 2 * len(modalities)
        raise ValueError(f"--n {spec.n}: with --per-modality over {len(modalities)} modalities ({', '.join(modalities)}) "
                         f"n must be a multiple of {m} (e.g. {spec.n // m * m or m} or {(spec.n // m + 1) * m})")
    per = spec.n // (2 * len(modalities))
    short = [f"{m}/{o}: {len(c)}" for (m, o), c in strata.items() if len(c) < per]
    missing = [f"{m}/{o}: 0" for m in modalities for o in ORIGINS if (m, o) not in strata]
    if short or missing:
        raise ValueError(f"--n {spec.n} needs {per} readable clips per origin{' and modality' if spec.per_modality else ''}"
                         f", but there are only {', '.join(short + missing)}; lower --n or add clips")
    return per


def create_study(spec: StudySpec, progress: bool = True) -> CreateReport:
    """Build the study database at ``spec.out`` (see the module docstring)."""
    spec.check()
    began = time.perf_counter()
    report = CreateReport()
    real, fake = list_clips(spec.real, "real"), list_clips(spec.fake, "generated")
    shared = sorted({c.path.resolve() for c in real} & {c.path.resolve() for c in fake})
    if shared:
        raise ValueError(f"--real and --fake share {len(shared)} clip(s) (e.g. {shared[0]}); a clip cannot be both "
                         "real and generated: point them at separate folders")
    clips = real + fake
    usable = _probe(clips, spec.frames, report, progress)
    strata = _strata(spec, usable, report)
    per = _quota(spec, strata)
    rng = random.Random(spec.seed)
    chosen: list[tuple[Clip, bytes]] = []
    bar = tqdm(total=per * len(strata), desc="transcoding", unit="clip", disable=not progress, file=sys.stderr)
    for (modality, origin), candidates in strata.items():
        order = list(candidates)
        rng.shuffle(order)
        taken = 0
        for clip in order:
            if taken == per:
                break
            try:
                video = transcode(clip.path, usable[clip], frames=spec.frames, size=spec.size, fps=spec.fps,
                                  crf=spec.crf)
            except (UnreadableVideo, ClipTooShort) as err:
                report.left_out.append((f"{origin}: {clip.key}", str(getattr(err, "reason", err))))
                continue
            chosen.append((clip, video))
            taken += 1
            bar.update(1)
        if taken < per:
            bar.close()
            raise ValueError(f"{modality}/{origin}: only {taken} of {per} clips could be transcoded; lower --n")
        report.counts[(modality, origin)] = taken
    bar.close()
    rng.shuffle(chosen)
    _write(spec, chosen)
    report.seconds = time.perf_counter() - began
    return report


def _write(spec: StudySpec, chosen: list[tuple[Clip, bytes]]) -> None:
    spec.out.parent.mkdir(parents=True, exist_ok=True)
    partial = spec.out.with_name(spec.out.name + f".partial-{os.getpid()}")
    for suffix in ("", "-wal", "-shm"):
        Path(str(partial) + suffix).unlink(missing_ok=True)
    conn = connect(partial, create=True)
    try:
        meta = {"title": spec.title, "seed": spec.seed, "n": spec.n, "per_modality": spec.per_modality,
                "size": spec.size, "frames": spec.frames, "fps": spec.fps, "crf": spec.crf,
                "real": str(spec.real.resolve()), "fake": str(spec.fake.resolve()),
                "questions": questions_to_json(spec.questions), "created": time.time()}
        init_schema(conn, meta)
        conn.execute("BEGIN IMMEDIATE")
        for item_id, (clip, video) in enumerate(chosen, start=1):
            conn.execute("INSERT INTO items (id, token, modality, video) VALUES (?, ?, ?, ?)",
                         (item_id, secrets.token_urlsafe(16), clip.modality, video))
            conn.execute("INSERT INTO truth (item_id, origin, source) VALUES (?, ?, ?)",
                         (item_id, clip.origin, str(clip.path.resolve())))
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    os.replace(partial, spec.out)
    for suffix in ("-wal", "-shm"):
        Path(str(partial) + suffix).unlink(missing_ok=True)


def describe(report: CreateReport, out: Path, limit: Optional[int] = 20) -> str:
    """A few lines for the terminal: what was drawn, what was left out and why."""
    lines = [f"study {out}: {sum(report.counts.values())} clips in {report.seconds:.1f} s"]
    lines += [f"  {m:<16} {o:<10} {c}" for (m, o), c in sorted(report.counts.items())]
    if report.ignored_modalities:
        lines.append(f"  modalities without both origins, ignored: {', '.join(report.ignored_modalities)}")
    if report.left_out:
        lines.append(f"  {len(report.left_out)} clip(s) left out:")
        shown = report.left_out if limit is None else report.left_out[:limit]
        lines += [f"    {clip}: {why}" for clip, why in shown]
        if len(shown) < len(report.left_out):
            lines.append(f"    … and {len(report.left_out) - len(shown)} more")
    return "\n".join(lines)
