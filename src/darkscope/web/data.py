"""The dashboard's read side: DuckDB over the Parquet outputs the catalog found.

DuckDB is the embedded engine because every page is an aggregate over columnar files (hourly
counts, top-k, one host's rows): it scans Parquet in parallel with projection and filter
pushdown and needs no server or import step, so a running monitor's new parts are visible at
the next catalog look. Results are cached per catalog version: a page asked for twice between
two changes of the data is answered from memory.
"""

from __future__ import annotations

import ipaddress
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from darkscope.web.catalog import Catalog

CACHE_ENTRIES = 512
RANGES = {"6h": timedelta(hours=6), "24h": timedelta(hours=24), "7d": timedelta(days=7),
          "30d": timedelta(days=30)}


@dataclass(frozen=True)
class Host:
    """A source or victim address as the tables hold it: IPv4 as uint32, IPv6 as text."""

    text: str
    v4: int | None
    v6: str | None

    @classmethod
    def parse(cls, text: str) -> Host | None:
        try:
            address = ipaddress.ip_address(text.strip())
        except ValueError:
            return None
        if address.version == 4:
            return cls(str(address), int(address), None)
        return cls(str(address), None, str(address))


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime
    name: str

    def params(self) -> list[datetime]:
        return [self.start, self.end]


def _quoted(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def ipv4_text(value: int | None) -> str | None:
    return None if value is None else str(ipaddress.IPv4Address(int(value)))


class DataSource:
    """Views per output kind, refreshed with the catalog, and cached queries over them."""

    def __init__(self, root: Path) -> None:
        self.catalog = Catalog(root)
        self._db = duckdb.connect()
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple, list[dict[str, Any]]] = OrderedDict()
        self._views_version = -1
        self.refresh(force=True)

    def refresh(self, force: bool = False) -> None:
        self.catalog.refresh(force=force)
        with self._lock:
            if self._views_version == self.catalog.version:
                return
            for kind, files in self.catalog.files.items():
                listed = ", ".join(_quoted(p) for p in files)
                reader = ("read_json" if files[0].suffix == ".jsonl" else "read_parquet")
                options = ("format='newline_delimited', union_by_name=true"
                           if reader == "read_json" else "union_by_name=true")
                self._db.execute(f'CREATE OR REPLACE VIEW "{kind}" AS SELECT * FROM '
                                 f"{reader}([{listed}], {options})")
            self._views_version = self.catalog.version
            self._cache.clear()

    def has(self, kind: str) -> bool:
        return kind in self.catalog.files

    def columns(self, kind: str) -> set[str]:
        if not self.has(kind):
            return set()
        return {row["column_name"] for row in self.query(
            f'SELECT column_name FROM (DESCRIBE SELECT * FROM "{kind}")')}

    def query(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        self.refresh()
        key = (self._views_version, sql, tuple(params or ()))
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        cursor = self._db.cursor()
        try:
            result = cursor.execute(sql, params or [])
            names = [d[0] for d in result.description]
            rows = [dict(zip(names, row, strict=True)) for row in result.fetchall()]
        finally:
            cursor.close()
        with self._lock:
            self._cache[key] = rows
            while len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return rows

    # -- time -------------------------------------------------------------------------------
    def extent(self) -> tuple[datetime, datetime] | None:
        """The first and last moment the verdicts (else the packets) cover."""
        if self.has("verdicts"):
            rows = self.query('SELECT min(window_start) AS a, max(window_end) AS b '
                              'FROM verdicts')
        elif self.has("packets"):
            rows = self.query('SELECT min(ts) AS a, max(ts) AS b FROM packets')
        else:
            return None
        first, last = rows[0]["a"], rows[0]["b"]
        if first is None:
            return None
        return _utc(first), _utc(last)

    def time_range(self, name: str | None, start: str | None, end: str | None) -> TimeRange:
        """A preset (6h, 24h, 7d, 30d: back from the newest data), ``all``, or start/end."""
        extent = self.extent()
        now = datetime.now(UTC)
        first, last = extent or (now - timedelta(days=1), now)
        if start or end:
            low = _parse_time(start) if start else first
            high = _parse_time(end) if end else last
            return TimeRange(low, high, "custom")
        if name in RANGES:
            return TimeRange(max(first, last - RANGES[name]), last, name)
        return TimeRange(first, last, "all")


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _parse_time(text: str) -> datetime:
    """ISO 8601; a bad one raises ValueError, which pages turn into a 400 naming it. A '+'
    typed into a URL arrives as a space: '...T00:00:00 00:00' is read as '+00:00'."""
    text = re.sub(r" (\d\d:?\d\d)$", r"+\1", text.strip()).replace("Z", "+00:00")
    return _utc(datetime.fromisoformat(text))
