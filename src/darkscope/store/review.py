"""The expert review queue: host-windows the detector could not decide, and experts' labels.

A queued item keeps its feature vector, so a label can train the next model update without
re-reading the packets. Labels keep who gave them and when; a later label for the same host
replaces an earlier one for training. The label table is an append-only history: each row
names the label it replaced and the model version and score it was given under, and an undo is
a new row restoring the label before (``label`` NULL when there was none).

A label given in the dashboard's evaluation slice also keeps the model's guess for that item
from *before* the label was learnt (``evaluation_guesses``): test-then-train, so accuracy on the
slice is measured on labels the model had not seen.
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
SCHEMA_VERSION = 2

_QUEUE = """
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
    model_version TEXT,              -- the model that queued it, when known (schema 2)
    PRIMARY KEY (src, window_start)
);
"""
_LABELS = """
CREATE TABLE IF NOT EXISTS {name} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    src INTEGER NOT NULL,
    window_start INTEGER,            -- NULL: the label covers every window of the host
    label TEXT CHECK (label IS NULL OR label IN ('ddos', 'scan', 'other')),  -- NULL: withdrawn
    note TEXT,
    who TEXT NOT NULL,
    at TEXT NOT NULL,
    previous TEXT,                   -- the label this one replaced (NULL: none)
    model_version TEXT,              -- the model judging the item when it was labelled
    score REAL,                      -- that model's confidence then
    undoes INTEGER                   -- the id of the label an undo withdrew
);
"""
_USERS = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'expert', 'admin')),
    password_hash TEXT NOT NULL,     -- argon2id, PHC string
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,     -- sha256 of the cookie's random token
    user TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at INTEGER NOT NULL      -- seconds since the epoch
);
CREATE TABLE IF NOT EXISTS api_tokens (
    id TEXT PRIMARY KEY,             -- public handle, to list and revoke a token by
    token_hash TEXT NOT NULL UNIQUE, -- sha256 of the bearer token (the token is never stored)
    user TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'expert', 'admin')),  -- at most the user's
    label TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at INTEGER,              -- seconds since the epoch; NULL: until revoked
    last_used_at TEXT
);
"""
_GUESSES = """
CREATE TABLE IF NOT EXISTS evaluation_guesses (
    label_id INTEGER PRIMARY KEY REFERENCES labels (id),
    predicted TEXT NOT NULL CHECK (predicted IN ('ddos', 'not-ddos')),
    p_ddos REAL NOT NULL,            -- the model's probability of DDoS before it saw the label
    model_version TEXT
);
"""
_SCHEMA = ("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
           + _QUEUE + _LABELS.format(name="labels")
           + "CREATE INDEX IF NOT EXISTS labels_src ON labels (src);" + _USERS + _GUESSES)
_LABEL_COLUMNS = ("id, src, window_start, label, note, who, at, previous, model_version, score, "
                  "undoes")


def _migrate_from_1(db: sqlite3.Connection) -> None:
    """Schema 1 had labels without history columns and a CHECK that forbade withdrawals."""
    db.executescript(
        "BEGIN IMMEDIATE;"
        "ALTER TABLE review_queue ADD COLUMN model_version TEXT;"
        + _LABELS.format(name="labels_v2")
        + "INSERT INTO labels_v2 (id, src, window_start, label, note, who, at) "
          "SELECT id, src, window_start, label, note, who, at FROM labels;"
          "DROP TABLE labels; ALTER TABLE labels_v2 RENAME TO labels;"
          "UPDATE meta SET value = '2' WHERE key = 'schema_version';"
          "COMMIT;")


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
    model_version: str | None = None
    label: str | None = None
    labelled_by: str | None = None


@dataclass(frozen=True)
class Label:
    """One row of the append-only label history; ``label`` None withdraws an earlier one."""

    id: int
    src: int
    window_start: int | None
    label: str | None
    note: str | None
    who: str
    at: str
    previous: str | None = None
    model_version: str | None = None
    score: float | None = None
    undoes: int | None = None


@dataclass(frozen=True)
class Guess:
    """What the model predicted for a labelled item before it learnt the label."""

    label_id: int
    predicted: str       # 'ddos' or 'not-ddos'
    p_ddos: float
    model_version: str | None


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
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("CREATE TABLE IF NOT EXISTS meta "
                             "(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            found = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if found is not None and int(found[0]) == 1:
                _migrate_from_1(self._db)
            elif found is not None and int(found[0]) != SCHEMA_VERSION:
                raise DarkscopeError(f"{self.path}: store schema version {found[0]}, this "
                                     f"darkscope reads versions 1 and {SCHEMA_VERSION}")
            self._db.executescript(_SCHEMA)
            if found is None:
                self._db.execute("INSERT INTO meta VALUES ('schema_version', ?)",
                                 (str(SCHEMA_VERSION),))
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
                                "AND NOT EXISTS (SELECT 1 FROM labels) "
                                "AND NOT EXISTS (SELECT 1 FROM users)").fetchone()[0] == 1

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
                feature_definition: str, model_version: str | None = None) -> int:
        """Add (src, window_start, window_end, packets, reason, confidence, features) items;
        an item already queued keeps its place and is refreshed. Returns the items written."""
        now = _now()
        records = [(int(s), int(w0), int(w1), int(n), reason, float(conf), json.dumps(feats),
                    feature_definition, now, model_version)
                   for s, w0, w1, n, reason, conf, feats in rows]
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO review_queue (src, window_start, window_end, packets, reason, "
                "confidence, features, feature_definition, queued_at, model_version) "
                "VALUES (?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (src, window_start) DO UPDATE SET window_end=excluded.window_end, "
                "packets=excluded.packets, reason=excluded.reason, "
                "confidence=excluded.confidence, features=excluded.features, "
                "feature_definition=excluded.feature_definition, "
                "model_version=coalesce(excluded.model_version, model_version)", records)
        return len(records)

    def label(self, src: int, label: str, *, window_start: int | None = None,
              note: str | None = None, who: str | None = None,
              model_version: str | None = None, score: float | None = None,
              guess: tuple[str, float, str | None] | None = None) -> Label:
        """Record an expert's label for a host (all its windows, or one window), with the
        label it replaces and, when known, the model version and score it was given under;
        ``guess`` (predicted, p_ddos, model version): the model's prediction before this
        label, kept in the same transaction."""
        if label not in LABELS:
            raise UsageError(f"label must be one of {', '.join(LABELS)}, got {label!r}")
        with self._transaction() as db:
            record = self._insert(db, src, window_start, label, note, who or _who(),
                                  model_version, score, None)
            if guess is not None:
                db.execute("INSERT INTO evaluation_guesses VALUES (?,?,?,?)",
                           (record.id, guess[0], float(guess[1]), guess[2]))
            return record

    def guesses(self) -> dict[int, Guess]:
        """The model's guesses kept with labels, by label id."""
        return {row[0]: Guess(*row) for row in self._db.execute(
            "SELECT label_id, predicted, p_ddos, model_version FROM evaluation_guesses")}

    def undo(self, label_id: int, who: str | None = None) -> Label:
        """Withdraw label ``label_id`` by appending the label it replaced (history is never
        rewritten); only the newest label of its host-window can be undone."""
        with self._transaction() as db:
            row = db.execute(f"SELECT {_LABEL_COLUMNS} FROM labels WHERE id=?",
                             (int(label_id),)).fetchone()
            if row is None:
                raise UsageError(f"no label #{label_id}")
            done = Label(*row)
            newest = db.execute("SELECT max(id) FROM labels WHERE src=? AND window_start IS ?",
                                (done.src, done.window_start)).fetchone()[0]
            if newest != done.id:
                raise UsageError(f"label #{label_id} was replaced since; undo the newer one")
            return self._insert(db, done.src, done.window_start, done.previous,
                                f"undo of #{done.id}", who or _who(), done.model_version,
                                done.score, done.id)

    @staticmethod
    def _insert(db: sqlite3.Connection, src: int, window_start: int | None, label: str | None,
                note: str | None, who: str, model_version: str | None, score: float | None,
                undoes: int | None) -> Label:
        previous = db.execute("SELECT label FROM labels WHERE src=? AND window_start IS ? "
                              "ORDER BY id DESC LIMIT 1", (int(src), window_start)).fetchone()
        at = _now()
        cursor = db.execute(
            "INSERT INTO labels (src, window_start, label, note, who, at, previous, "
            "model_version, score, undoes) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (int(src), window_start, label, note, who, at, previous and previous[0],
             model_version, score, undoes))
        return Label(int(cursor.lastrowid or 0), int(src), window_start, label, note, who, at,
                     previous and previous[0], model_version, score, undoes)

    def label_many(self, rows: Iterable[tuple[int, int | None, str]], who: str,
                   note: str | None = None) -> int:
        """Labels in bulk (a truth oracle standing in for experts): no history columns."""
        now = _now()
        records = [(int(s), None if w is None else int(w), lab, note, who, now)
                   for s, w, lab in rows]
        with self._transaction() as db:
            db.executemany("INSERT INTO labels (src, window_start, label, note, who, at) "
                           "VALUES (?,?,?,?,?,?)", records)
        return len(records)

    def history(self, src: int | None = None, limit: int | None = None) -> list[Label]:
        """The label history, newest first (of one host, or of all)."""
        where, args = ("WHERE src=?", [int(src)]) if src is not None else ("", [])
        query = f"SELECT {_LABEL_COLUMNS} FROM labels {where} ORDER BY id DESC"
        if limit is not None:
            query += " LIMIT ?"
            args.append(int(limit))
        return [Label(*row) for row in self._db.execute(query, args)]

    def labels_after(self, label_id: int) -> tuple[dict[tuple[int, int | None], Label], int]:
        """Labels recorded after ``label_id`` (latest per host-window, withdrawals included),
        and the newest id: how a long-running process learns what experts said since it last
        looked."""
        latest: dict[tuple[int, int | None], Label] = {}
        newest = label_id
        for row in self._db.execute(
                f"SELECT {_LABEL_COLUMNS} FROM labels WHERE id > ? ORDER BY id",
                (int(label_id),)):
            newest = row[0]
            latest[(row[1], row[2])] = Label(*row)
        return latest, newest

    def labels(self) -> dict[tuple[int, int | None], Label]:
        """The standing label per (host, window) and per host (window ``None``)."""
        latest: dict[tuple[int, int | None], Label] = {}
        for row in self._db.execute(f"SELECT {_LABEL_COLUMNS} FROM labels ORDER BY id"):
            latest[(row[1], row[2])] = Label(*row)
        return {key: label for key, label in latest.items() if label.label is not None}

    def items(self, *, pending_only: bool = False, limit: int | None = None) -> list[ReviewItem]:
        """Queued items, lowest confidence first, each with its latest label if any."""
        latest = self.labels()
        out = []
        for row in self._db.execute(
                "SELECT src, window_start, window_end, packets, reason, confidence, features, "
                "feature_definition, queued_at, model_version FROM review_queue "
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
