"""The study database (SQLite): items, hidden truth, questions, readers and their answers.

One file holds a whole study, so it can be copied, archived and analysed anywhere. It is in WAL
mode with ``synchronous=FULL``: an answer is committed (and the WAL fsynced) before the reader's
browser is told it was saved, so killing the server, or the machine losing power, loses nothing
that was acknowledged. Readers write concurrently through short transactions (``busy_timeout``).

The truth lives in its own table that only :func:`answers_with_truth` (used by ``results``) reads;
the web application goes through :class:`ReaderStore`, which has no query touching it.
"""
from __future__ import annotations

import json
import random
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from medsora.reader_study.questions import Question, questions_from_json

__all__ = ["SCHEMA_VERSION", "StudyError", "connect", "init_schema", "ReaderStore", "Reader", "Item",
           "answers_with_truth", "read_meta", "reader_order"]

SCHEMA_VERSION = 1
NAME_MAX = 80

_SCHEMA = """
CREATE TABLE study (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE items (
    id INTEGER PRIMARY KEY,             -- position in the seeded shuffle, never shown to readers
    token TEXT NOT NULL UNIQUE,         -- random, opaque: the only name a reader's browser sees
    modality TEXT NOT NULL,
    video BLOB NOT NULL                 -- H.264 mp4, same size, length and rate for every item
);
CREATE TABLE truth (
    item_id INTEGER PRIMARY KEY REFERENCES items(id),
    origin TEXT NOT NULL CHECK (origin IN ('real', 'generated')),
    source TEXT NOT NULL                -- the file the clip was cut from
);
CREATE TABLE readers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    token TEXT NOT NULL UNIQUE,         -- the browser's session cookie
    created REAL NOT NULL
);
CREATE TABLE answers (
    reader_id INTEGER NOT NULL REFERENCES readers(id),
    item_id INTEGER NOT NULL REFERENCES items(id),
    answers TEXT NOT NULL,              -- JSON {question id: value}
    seconds REAL,                       -- from the page being served to the answer
    answered REAL NOT NULL,             -- unix time of the commit
    PRIMARY KEY (reader_id, item_id)
);
"""


class StudyError(RuntimeError):
    """A study database that cannot be used as asked (missing, not a study, newer schema)."""


def connect(path: str | Path, *, create: bool = False) -> sqlite3.Connection:
    """Open a study database (WAL, synchronous FULL, foreign keys, 10 s busy timeout).

    Raises:
        StudyError: the file is missing (unless ``create``) or is not a MedSora study.
    """
    path = Path(path)
    if not create and not path.is_file():
        raise StudyError(f"{path}: no such study database (make one with python -m medsora.reader_study create)")
    conn = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("PRAGMA busy_timeout = 10000")
        # read before switching to WAL, so that another program's SQLite file is left as it was
        row = None if create else conn.execute("SELECT value FROM study WHERE key = 'schema_version'").fetchone()
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.DatabaseError as err:
        conn.close()
        raise StudyError(f"{path}: not a reader-study database ({err})") from None
    if not create:
        if row is None or int(row["value"]) > SCHEMA_VERSION:
            conn.close()
            raise StudyError(f"{path}: study schema {row and row['value']} is not supported by this MedSora "
                             f"(version {SCHEMA_VERSION}); update MedSora")
    return conn


def init_schema(conn: sqlite3.Connection, meta: dict[str, Any]) -> None:
    """Create the tables and store ``meta`` (values JSON-encoded) in one transaction."""
    conn.executescript("BEGIN;" + _SCHEMA + "COMMIT;")
    with _transaction(conn):
        rows = [("schema_version", str(SCHEMA_VERSION))] + [(k, json.dumps(v)) for k, v in meta.items()]
        conn.executemany("INSERT INTO study (key, value) VALUES (?, ?)", rows)


class _transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (rollback on error) on an autocommit connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


def read_meta(conn: sqlite3.Connection) -> dict[str, Any]:
    """The study's settings (seed, size, frames, fps, questions JSON, sources…)."""
    rows = conn.execute("SELECT key, value FROM study WHERE key != 'schema_version'").fetchall()
    return {key: json.loads(value) for key, value in (tuple(row) for row in rows)}


def reader_order(seed: int, reader_id: int, item_ids: list[int]) -> list[int]:
    """The order one reader sees the items in: a permutation seeded by the study seed and the reader.

    Each reader gets their own order (so no item is always seen first or after the same item),
    and the same reader always gets the same one, which is what makes resuming exact.
    """
    order = sorted(item_ids)
    random.Random(f"medsora-reader-study/{seed}/{reader_id}").shuffle(order)
    return order


@dataclass(frozen=True)
class Reader:
    id: int
    name: str
    token: str


@dataclass(frozen=True)
class Item:
    id: int
    token: str


class ReaderStore:
    """What the web application may read and write: readers, items by token, a reader's own answers."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with self._conn() as conn:
            meta = read_meta(conn)
            self.item_ids = [r["id"] for r in conn.execute("SELECT id FROM items ORDER BY id")]
            self.tokens = {r["id"]: r["token"] for r in conn.execute("SELECT id, token FROM items")}
        self.seed = int(meta["seed"])
        self.questions: list[Question] = questions_from_json(meta["questions"])
        self.title = str(meta.get("title") or "Reader study")
        self.ids = {token: item_id for item_id, token in self.tokens.items()}

    def _conn(self) -> "_Closing":
        return _Closing(connect(self.path))

    def export_videos(self, folder: Path) -> None:
        """Write every item's mp4 to ``folder/<token>.mp4`` (the only file names the browser sees)."""
        folder.mkdir(parents=True, exist_ok=True)
        with self._conn() as conn:
            for row in conn.execute("SELECT token, video FROM items"):
                (folder / f"{row['token']}.mp4").write_bytes(row["video"])

    def reader(self, name: str) -> Reader:
        """The reader called ``name`` (case-insensitive), created on first use."""
        name = " ".join(name.split())
        if not name or len(name) > NAME_MAX:
            raise ValueError(f"a reader name of 1 to {NAME_MAX} characters")
        with self._conn() as conn, _transaction(conn):
            row = conn.execute("SELECT id, name, token FROM readers WHERE name = ?", (name,)).fetchone()
            if row is None:
                token = secrets.token_urlsafe(24)
                cur = conn.execute("INSERT INTO readers (name, token, created) VALUES (?, ?, ?)",
                                   (name, token, time.time()))
                return Reader(cur.lastrowid, name, token)
        return Reader(row["id"], row["name"], row["token"])

    def reader_by_token(self, token: Optional[str]) -> Optional[Reader]:
        if not token:
            return None
        with self._conn() as conn:
            row = conn.execute("SELECT id, name, token FROM readers WHERE token = ?", (token,)).fetchone()
        return Reader(row["id"], row["name"], row["token"]) if row else None

    def progress(self, reader: Reader) -> tuple[Optional[Item], int, int]:
        """``(next item or None when done, answered so far, total)`` for ``reader``."""
        with self._conn() as conn:
            done = {r["item_id"] for r in conn.execute("SELECT item_id FROM answers WHERE reader_id = ?",
                                                       (reader.id,))}
        for item_id in reader_order(self.seed, reader.id, self.item_ids):
            if item_id not in done:
                return Item(item_id, self.tokens[item_id]), len(done), len(self.item_ids)
        return None, len(done), len(self.item_ids)

    def has_answer(self, reader: Reader, item_token: str) -> bool:
        with self._conn() as conn:
            return conn.execute("SELECT 1 FROM answers WHERE reader_id = ? AND item_id = ?",
                                (reader.id, self.ids[item_token])).fetchone() is not None

    def save_answer(self, reader: Reader, item_token: str, answers: dict[str, Any],
                    seconds: Optional[float]) -> bool:
        """Commit one answer; False when this reader had already answered the item (the first answer stays).

        Raises:
            KeyError: ``item_token`` is not an item of this study.
        """
        item_id = self.ids[item_token]
        with self._conn() as conn, _transaction(conn):
            cur = conn.execute(
                "INSERT OR IGNORE INTO answers (reader_id, item_id, answers, seconds, answered) VALUES (?, ?, ?, ?, ?)",
                (reader.id, item_id, json.dumps(answers), seconds, time.time()))
            return cur.rowcount == 1


class _Closing:
    """A connection used as a context manager that closes it (sqlite3's own only ends a transaction)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, *exc) -> None:
        self.conn.close()


def answers_with_truth(conn: sqlite3.Connection) -> Iterator[dict[str, Any]]:
    """Every answer joined with its reader, item modality and hidden origin (for ``results`` only)."""
    rows = conn.execute(
        "SELECT r.name AS reader, a.item_id, i.modality, t.origin, a.answers, a.seconds FROM answers a "
        "JOIN readers r ON r.id = a.reader_id JOIN items i ON i.id = a.item_id JOIN truth t ON t.item_id = a.item_id "
        "ORDER BY r.name, a.item_id")
    for row in rows:
        yield {"reader": row["reader"], "item": row["item_id"], "modality": row["modality"], "origin": row["origin"],
               "answers": json.loads(row["answers"]), "seconds": row["seconds"]}
