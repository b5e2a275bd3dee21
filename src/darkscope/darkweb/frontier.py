"""Crawl state in SQLite (WAL): the frontier, what was fetched, and where it lies in the WARC.

SQLite in WAL mode commits each page atomically and survives ``kill -9``: a commit that returned
is on disk for the next process. The WARC file is written first and the commit records how far
it is complete (``warc_files.committed_end``); :mod:`darkscope.darkweb.archive` replays anything
written after that point on restart, so no fetched page is lost and none is fetched twice.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from darkscope.darkweb.urls import host_of
from darkscope.errors import InputFormatError

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS urls (
    generation INTEGER NOT NULL,
    url TEXT NOT NULL,
    host TEXT NOT NULL,
    depth INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',   -- pending, done, failed, skipped
    attempts INTEGER NOT NULL DEFAULT 0,
    redirect_chain TEXT NOT NULL DEFAULT '[]',
    status INTEGER,
    sha256 TEXT,
    duplicate_of TEXT,
    warc_file TEXT,
    warc_offset INTEGER,
    error TEXT,
    fetched_at REAL,
    parent TEXT,                             -- the page that linked (or redirected) here first
    PRIMARY KEY (generation, url)
);
CREATE INDEX IF NOT EXISTS urls_state ON urls (generation, state);
CREATE INDEX IF NOT EXISTS urls_sha ON urls (generation, sha256);
CREATE TABLE IF NOT EXISTS warc_files (
    name TEXT PRIMARY KEY, generation INTEGER NOT NULL, committed_end INTEGER NOT NULL);
"""


@dataclass
class Entry:
    """One URL to fetch, as the scheduler holds it."""

    url: str
    depth: int
    attempts: int = 0
    redirect_chain: list[str] = field(default_factory=list)
    not_before: float = 0.0
    parent: str | None = None

    @property
    def host(self) -> str:
        return host_of(self.url)


@dataclass
class Outcome:
    """What became of one fetch, committed in one transaction."""

    url: str
    state: str
    status: int | None = None
    sha256: str | None = None
    duplicate_of: str | None = None
    warc_file: str | None = None
    warc_offset: int | None = None
    warc_end: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class PageState:
    state: str
    status: int | None
    depth: int
    duplicate_of: str | None
    parent: str | None


class Frontier:
    """The persistent frontier of one crawl directory; ``generation`` counts re-crawls."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.db = sqlite3.connect(self.path, isolation_level=None)
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
            columns = {row[1] for row in self.db.execute("PRAGMA table_info(urls)")}
            if "parent" not in columns:  # a state written before link provenance was kept
                self.db.execute("ALTER TABLE urls ADD COLUMN parent TEXT")
            row = self.db.execute("SELECT max(generation) FROM urls").fetchone()
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise InputFormatError(self.path, f"not a darkscope crawl state: {exc}") from None
        self.generation: int = row[0] or 0

    def close(self) -> None:
        self.db.close()

    # -- configuration kept with the state, so --resume needs no repeated flags -------------
    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- generations ---------------------------------------------------------------------------
    def start_generation(self, seeds: Iterable[str]) -> int:
        """Begin a new crawl pass (generation) over ``seeds``; returns its number."""
        self.generation += 1
        with self._transaction():
            self._insert(Entry(url, 0) for url in seeds)
        return self.generation

    # -- reading -------------------------------------------------------------------------------
    def pending(self) -> list[Entry]:
        rows = self.db.execute(
            "SELECT url, depth, attempts, redirect_chain FROM urls "
            "WHERE generation=? AND state='pending' ORDER BY depth, rowid", (self.generation,))
        return [Entry(u, d, a, json.loads(c)) for u, d, a, c in rows]

    def counts(self, generation: int | None = None) -> dict[str, int]:
        rows = self.db.execute(
            "SELECT state, count(*) FROM urls WHERE generation=? GROUP BY state",
            (generation or self.generation,))
        return dict(rows.fetchall())

    def page_states(self, generation: int) -> dict[str, PageState]:
        """Every URL of ``generation`` with what became of it and the page that led to it."""
        rows = self.db.execute(
            "SELECT url, state, status, depth, duplicate_of, parent FROM urls "
            "WHERE generation=?", (generation,))
        return {url: PageState(*rest) for url, *rest in rows}

    def content_owner(self, sha256: str) -> str | None:
        """The first URL of this generation whose body had this hash (content de-dup)."""
        row = self.db.execute(
            "SELECT url FROM urls WHERE generation=? AND sha256=? AND duplicate_of IS NULL "
            "LIMIT 1", (self.generation, sha256)).fetchone()
        return None if row is None else row[0]

    def committed_end(self, warc_name: str) -> int:
        row = self.db.execute(
            "SELECT committed_end FROM warc_files WHERE name=?", (warc_name,)).fetchone()
        return 0 if row is None else row[0]

    def warc_files(self, generation: int) -> list[str]:
        rows = self.db.execute(
            "SELECT name FROM warc_files WHERE generation=? ORDER BY name", (generation,))
        return [name for (name,) in rows]

    # -- writing -------------------------------------------------------------------------------
    def register_warc(self, warc_name: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO warc_files VALUES (?, ?, 0)",
                        (warc_name, self.generation))

    def commit(self, outcome: Outcome, discovered: Iterable[Entry]) -> list[Entry]:
        """Record ``outcome`` and add ``discovered`` URLs atomically; return the new ones."""
        with self._transaction():
            self.db.execute(
                "UPDATE urls SET state=?, status=?, sha256=?, duplicate_of=?, warc_file=?, "
                "warc_offset=?, error=?, fetched_at=?, attempts=attempts+1 "
                "WHERE generation=? AND url=?",
                (outcome.state, outcome.status, outcome.sha256, outcome.duplicate_of,
                 outcome.warc_file, outcome.warc_offset, outcome.error, time.time(),
                 self.generation, outcome.url))
            if outcome.warc_file is not None and outcome.warc_end is not None:
                self.db.execute("UPDATE warc_files SET committed_end=? WHERE name=?",
                                (outcome.warc_end, outcome.warc_file))
            return self._insert(discovered)

    def retry_later(self, url: str, error: str) -> None:
        self.db.execute(
            "UPDATE urls SET attempts=attempts+1, error=? WHERE generation=? AND url=?",
            (error, self.generation, url))

    def _insert(self, entries: Iterable[Entry]) -> list[Entry]:
        added = []
        for entry in entries:
            cursor = self.db.execute(
                "INSERT OR IGNORE INTO urls (generation, url, host, depth, redirect_chain, parent) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (self.generation, entry.url, entry.host, entry.depth,
                 json.dumps(entry.redirect_chain), entry.parent))
            if cursor.rowcount:
                added.append(entry)
        return added

    def _transaction(self) -> _Transaction:
        return _Transaction(self.db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
