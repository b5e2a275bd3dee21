"""The expert review queue: host-windows the detector could not decide, and experts' labels.

A queued item keeps its feature vector, so a label can train the next model update without
re-reading the packets. Labels keep who gave them and when; a later label for the same host
replaces an earlier one for training (the history stays in the table).
"""

from __future__ import annotations

import getpass
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from darkscope.errors import DarkscopeError, UsageError

DEFAULT_STORE = "darkscope.db"
LABELS = ("ddos", "scan", "other")
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS review_queue (
    src INTEGER NOT NULL,
    window_start INTEGER NOT NULL,   -- ns since the epoch, UTC
    window_end INTEGER NOT NULL,
    packets INTEGER NOT NULL,
    reason TEXT NOT NULL,            -- 'outlier' (gate), 'one-packet' or 'low-confidence'
    confidence REAL NOT NULL,
    features TEXT NOT NULL,          -- JSON list, in the model's feature order
    feature_definition TEXT NOT NULL,
    queued_at TEXT NOT NULL,
    PRIMARY KEY (src, window_start)
);
CREATE TABLE IF NOT EXISTS labels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    src INTEGER NOT NULL,
    window_start INTEGER,            -- NULL: the label covers every window of the host
    label TEXT NOT NULL CHECK (label IN ('ddos', 'scan', 'other')),
    note TEXT,
    who TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS labels_src ON labels (src);
"""


@dataclass(frozen=True)
class ReviewItem:
    src: int
    window_start: int
    window_end: int
    packets: int
    reason: str
    confidence: float
    features: list[float]
    feature_definition: str
    queued_at: str
    label: str | None = None
    labelled_by: str | None = None


@dataclass(frozen=True)
class Label:
    src: int
    window_start: int | None
    label: str
    note: str | None
    who: str
    at: str


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid{os.getuid()}"


class ReviewStore:
    """The queue and labels in one SQLite file (created on first use; safe across processes).

    Used as a context manager, a store this call created is removed again when the block fails
    before anything was written to it: a run stopped by bad input leaves no empty store behind.
    """

    def __init__(self, path: str | Path = DEFAULT_STORE) -> None:
        self.path = Path(path)
        if not self.path.parent.exists():
            raise UsageError(f"store directory {self.path.parent} does not exist")
        self._created = not self.path.exists()
        try:
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
            found = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if found is None:
                self._db.execute("INSERT INTO meta VALUES ('schema_version', ?)",
                                 (str(SCHEMA_VERSION),))
            elif int(found[0]) != SCHEMA_VERSION:
                raise DarkscopeError(f"{self.path}: store schema version {found[0]}, this "
                                     f"darkscope reads version {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise DarkscopeError(f"{self.path}: not a darkscope store ({exc})") from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ReviewStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        empty = self._created and exc_type is not None and self.is_empty()
        self.close()
        if empty:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def is_empty(self) -> bool:
        """Nothing queued and nothing labelled."""
        return self._db.execute("SELECT NOT EXISTS (SELECT 1 FROM review_queue) "
                                "AND NOT EXISTS (SELECT 1 FROM labels)").fetchone()[0] == 1

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def enqueue(self, rows: Iterable[tuple[int, int, int, int, str, float, list[float]]],
                feature_definition: str) -> int:
        """Add (src, window_start, window_end, packets, reason, confidence, features) items;
        an item already queued keeps its place and is refreshed. Returns the items written."""
        now = _now()
        records = [(int(s), int(w0), int(w1), int(n), reason, float(conf), json.dumps(feats),
                    feature_definition, now)
                   for s, w0, w1, n, reason, conf, feats in rows]
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO review_queue VALUES (?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (src, window_start) DO UPDATE SET window_end=excluded.window_end, "
                "packets=excluded.packets, reason=excluded.reason, "
                "confidence=excluded.confidence, features=excluded.features, "
                "feature_definition=excluded.feature_definition", records)
        return len(records)

    def label(self, src: int, label: str, *, window_start: int | None = None,
              note: str | None = None, who: str | None = None) -> Label:
        """Record an expert's label for a host (all its windows, or one window)."""
        if label not in LABELS:
            raise UsageError(f"label must be one of {', '.join(LABELS)}, got {label!r}")
        record = Label(int(src), window_start, label, note, who or _who(), _now())
        with self._transaction() as db:
            db.execute("INSERT INTO labels (src, window_start, label, note, who, at) "
                       "VALUES (?,?,?,?,?,?)",
                       (record.src, record.window_start, record.label, record.note, record.who,
                        record.at))
        return record

    def label_many(self, rows: Iterable[tuple[int, int | None, str]], who: str,
                   note: str | None = None) -> int:
        now = _now()
        records = [(int(s), None if w is None else int(w), lab, note, who, now)
                   for s, w, lab in rows]
        with self._transaction() as db:
            db.executemany("INSERT INTO labels (src, window_start, label, note, who, at) "
                           "VALUES (?,?,?,?,?,?)", records)
        return len(records)

    def labels_after(self, label_id: int) -> tuple[dict[tuple[int, int | None], Label], int]:
        """Labels recorded after ``label_id`` (latest per host-window), and the newest id: how
        a long-running process learns what experts said since it last looked."""
        latest: dict[tuple[int, int | None], Label] = {}
        newest = label_id
        for row in self._db.execute(
                "SELECT id, src, window_start, label, note, who, at FROM labels WHERE id > ? "
                "ORDER BY id", (int(label_id),)):
            newest = row[0]
            latest[(row[1], row[2])] = Label(*row[1:])
        return latest, newest

    def labels(self) -> dict[tuple[int, int | None], Label]:
        """The latest label per (host, window) and per host (window ``None``)."""
        latest: dict[tuple[int, int | None], Label] = {}
        for row in self._db.execute(
                "SELECT src, window_start, label, note, who, at FROM labels ORDER BY id"):
            latest[(row[0], row[1])] = Label(*row)
        return latest

    def items(self, *, pending_only: bool = False, limit: int | None = None) -> list[ReviewItem]:
        """Queued items, lowest confidence first, each with its latest label if any."""
        latest = self.labels()
        out = []
        for row in self._db.execute(
                "SELECT src, window_start, window_end, packets, reason, confidence, features, "
                "feature_definition, queued_at FROM review_queue "
                "ORDER BY confidence, src, window_start"):
            found = latest.get((row[0], row[1])) or latest.get((row[0], None))
            if pending_only and found is not None:
                continue
            out.append(ReviewItem(*row[:6], json.loads(row[6]), *row[7:],
                                  label=found.label if found else None,
                                  labelled_by=found.who if found else None))
            if limit is not None and len(out) >= limit:
                break
        return out

    def has_queued(self, src: int, window_start: int | None = None) -> bool:
        """Whether the host (or that window of it) was ever queued for review."""
        if window_start is None:
            query, args = "SELECT 1 FROM review_queue WHERE src=? LIMIT 1", (int(src),)
        else:
            query = "SELECT 1 FROM review_queue WHERE src=? AND window_start=? LIMIT 1"
            args = (int(src), int(window_start))
        return self._db.execute(query, args).fetchone() is not None

    def queued_hosts(self) -> set[int]:
        return {row[0] for row in self._db.execute("SELECT DISTINCT src FROM review_queue")}
