"""Tiny real/generated clip folders, a study made from them, and a study server in a subprocess."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from medsora.data.demo.writer import write_mp4
from medsora.reader_study.__main__ import DEFAULT_QUESTIONS
from medsora.reader_study.create import StudySpec, create_study
from medsora.reader_study.questions import load_questions

REPO = Path(__file__).resolve().parents[2]
FRAMES, H, W = 12, 40, 48


def _clip(kind: str, seed: int, frames: int = FRAMES) -> np.ndarray:
    """``frames×H×W×3`` uint8: a drifting smooth pattern ("real") or flickering noise ("generated")."""
    rng = np.random.default_rng(seed)
    if kind == "real":
        y, x = np.mgrid[0:H, 0:W].astype(float)
        phase = rng.uniform(0, 6.28)
        video = [128 + 100 * np.sin(0.3 * x + 0.2 * y + phase + 0.4 * t) for t in range(frames)]
        video = np.stack(video)[..., None].repeat(3, axis=-1)
        video[..., 1] *= 0.6
    else:
        video = rng.integers(0, 256, size=(frames, H, W, 3)).astype(float)
    return np.clip(video, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def clip_sets(tmp_path_factory) -> tuple[Path, Path]:
    """``(real, fake)`` folders: 4 clips per modality (endoscopy, ultrasound) in each, plus bad files.

    real/ holds one 3-frame clip (too short for an 8-frame study); fake/ holds a corrupt file and
    a truncated one. Names are deliberately telling (``real_endoscopy_0.mp4``) so a leak would show.
    """
    root = tmp_path_factory.mktemp("clips")
    for origin, folder in (("real", "real"), ("generated", "fake")):
        for m, modality in enumerate(("endoscopy", "ultrasound")):
            (root / folder / modality).mkdir(parents=True)
            for i in range(4):
                write_mp4(root / folder / modality / f"{origin}_{modality}_{i}.mp4", _clip(origin, 10 * m + i), 8)
    write_mp4(root / "real" / "endoscopy" / "real_short.mp4", _clip("real", 99, frames=3), 8)
    (root / "fake" / "endoscopy" / "generated_corrupt.mp4").write_bytes(b"this is not a video" * 50)
    good = (root / "fake" / "ultrasound" / "generated_ultrasound_0.mp4").read_bytes()
    (root / "fake" / "ultrasound" / "generated_truncated.mp4").write_bytes(good[: len(good) // 3])
    return root / "real", root / "fake"


def make_spec(real: Path, fake: Path, out: Path, **kw) -> StudySpec:
    values = dict(n=8, seed=0, size=32, frames=8, fps=8, questions=load_questions(DEFAULT_QUESTIONS))
    values.update(kw)
    return StudySpec(real=real, fake=fake, out=out, **values)


@pytest.fixture(scope="session")
def spec_maker(clip_sets):
    """``spec(out, **overrides) -> StudySpec`` over the clip sets (8 clips of 8 frames at 32 px by default)."""
    return lambda out, **kw: make_spec(*clip_sets, out, **kw)


@pytest.fixture(scope="session")
def study_factory(clip_sets, tmp_path_factory):
    """``make(**spec overrides) -> (db path, CreateReport)``: a fresh study database each call."""
    counter = iter(range(10 ** 6))

    def make(**kw):
        out = tmp_path_factory.mktemp("study") / f"study{next(counter)}.db"
        report = create_study(make_spec(*clip_sets, out, **kw), progress=False)
        return out, report

    return make


@pytest.fixture(scope="session")
def study_template(study_factory):
    """One 16-clip per-modality study, created once; copy it with :func:`fresh_study` before writing."""
    return study_factory(n=16, per_modality=True)[0]


@pytest.fixture
def fresh_study(study_template, tmp_path) -> Path:
    path = tmp_path / "study.db"
    path.write_bytes(study_template.read_bytes())
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m medsora.reader_study serve DB`` on a free port of 127.0.0.1, in its own process."""

    def __init__(self, db: Path, log: Path) -> None:
        self.db, self.log = db, log
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "medsora.reader_study", "serve", str(db), "--port", str(self.port)],
            cwd=REPO, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # bounded wait for the port
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {log.read_text()}")
            try:
                httpx.get(self.url + "/", timeout=1.0)
                return
            except httpx.TransportError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not answer within 60 s: {log.read_text()}")

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill9()


@pytest.fixture
def server_factory(tmp_path):
    """``start(db) -> Server``; every server started is stopped at the end of the test."""
    started: list[Server] = []

    def start(db: Path) -> Server:
        server = Server(db, tmp_path / f"server{len(started)}.log")
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
