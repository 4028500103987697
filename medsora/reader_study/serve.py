"""``serve``: one server per study database, run by uvicorn.

The clips are written once per start to ``STUDY.db.clips/<token>.mp4`` (removed on exit) and
served from there. A second ``serve`` of the same database is refused: the first holds an exclusive ``flock`` on
``STUDY.db.serve-lock`` for its lifetime. The kernel drops the lock when that process ends in any
way (Ctrl-C, crash, ``kill -9``), so there is never a stale lock to clean up. (Two servers would
each be safe for the data — every answer is its own transaction — but two addresses for one study
invite confusion, so it is refused with the address of the one already running.)
"""
from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

from medsora.reader_study.db import ReaderStore, StudyError, connect

__all__ = ["ServeLock", "serve"]

try:
    import fcntl
except ImportError:  # Windows: no advisory locks through fcntl
    fcntl = None


class ServeLock:
    """An exclusive, non-blocking lock on ``<db>.serve-lock`` holding the owner's pid and address."""

    def __init__(self, db: Path, address: str) -> None:
        self.path = Path(str(db) + ".serve-lock")
        self.address = address
        self.handle = None

    def __enter__(self) -> "ServeLock":
        handle = open(self.path, "a+", encoding="utf-8")
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.seek(0)
                owner = handle.read().strip() or "another process"
                handle.close()
                raise StudyError(f"{self.path.with_suffix('')}: already being served ({owner}); open that address, "
                                 "or stop that server first") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} at {self.address}")
        handle.flush()
        self.handle = handle
        return self

    def __exit__(self, *exc) -> None:
        if self.handle is not None:
            self.handle.seek(0)
            self.handle.truncate()
            self.handle.close()  # closing releases the flock
            self.handle = None


def serve(db: Path, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve the study at ``db`` until interrupted (see :func:`medsora.reader_study.app.create_app`)."""
    import uvicorn

    from medsora.reader_study.app import create_app

    db = Path(db)
    connect(db).close()  # a missing file or a non-study fails here, naming it
    address = f"http://{host}:{port}"
    with ServeLock(db, address):
        store = ReaderStore(db)
        # beside the database, not in /tmp: a server killed with -9 cannot clean up, and the next serve
        # (holding the lock) replaces what it left
        clips = Path(str(db) + ".clips")
        try:
            shutil.rmtree(clips, ignore_errors=True)
            store.export_videos(clips)
            conn = connect(db)
            readers = conn.execute("SELECT COUNT(*) FROM readers").fetchone()[0]
            answers = conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
            conn.close()
            print(f"serving {db} ({len(store.ids)} clips, {readers} readers, {answers} answers so far) at {address}"
                  " — Ctrl-C to stop", flush=True)
            if host not in ("127.0.0.1", "localhost", "::1"):
                print(f"note: {host} makes the study reachable from other machines; readers are identified by the "
                      "name they type, with no password", flush=True)
            # uvicorn shuts down gracefully on SIGINT/SIGTERM, then raises the signal again for the previous
            # handler: make that an exception, so the clip folder and the lock are cleaned up on the way out.
            previous = signal.signal(signal.SIGTERM, _raise_exit)
            try:
                uvicorn.run(create_app(store, clips), host=host, port=port, log_level="warning", access_log=False)
            except KeyboardInterrupt:
                pass
            finally:
                signal.signal(signal.SIGTERM, previous)
            print("server stopped; every acknowledged answer is in the database", flush=True)
        finally:
            shutil.rmtree(clips, ignore_errors=True)


def _raise_exit(signum, frame) -> None:
    raise SystemExit(0)
