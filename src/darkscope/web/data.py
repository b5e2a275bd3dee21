"""The dashboard's read side: DuckDB over the Parquet outputs the catalog found.

DuckDB is the embedded engine because every page is an aggregate over columnar files (hourly
counts, top-k, one host's rows): it scans Parquet in parallel with projection and filter
pushdown and needs no server or import step, so a running monitor's new parts are visible at
the next catalog look. The busiest pages read summaries built once per file (rollups.py)
rather than the raw tables. Results are cached per catalog and summary version: a page asked
for twice between two changes of the data is answered from memory.
"""

from __future__ import annotations

import ipaddress
import json
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from darkscope.catalog import DOCUMENT_KINDS, Catalog
from darkscope.web.rollups import HOUR_NS, Rollups, arrow, merged_estimate

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

    @property
    def packed(self) -> bytes | None:
        """The IPv6 address as the packet tables hold it (16 bytes)."""
        return None if self.v6 is None else ipaddress.IPv6Address(self.v6).packed


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime
    name: str

    def params(self) -> list[datetime]:
        return [self.start, self.end]

    def hours(self) -> list[int]:
        """The range as whole hours since the epoch, [first, last): what the hourly
        summaries are kept at (the overview is hour-resolved)."""
        start = int(self.start.timestamp()) * 10**9 // HOUR_NS
        end = -(-int(self.end.timestamp() * 10**9) // HOUR_NS)
        return [start, max(end, start + 1)]


def _quoted(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def ipv4_text(value: int | None) -> str | None:
    return None if value is None else str(ipaddress.IPv4Address(int(value)))


def ipv6_text(value: bytes | str | None) -> str | None:
    """An IPv6 address from the packet tables' 16 bytes (or the verdicts' text)."""
    if value is None or isinstance(value, str):
        return value
    return str(ipaddress.IPv6Address(bytes(value))) if len(value) == 16 else None


class DataSource:
    """Views per output kind, refreshed with the catalog, and cached queries over them."""

    def __init__(self, root: Path, summaries: Path | None = None) -> None:
        self.catalog = Catalog(root)
        self._db = duckdb.connect()
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple, Any] = OrderedDict()
        self._running: dict[tuple, threading.Event] = {}
        self._views_version: tuple[int, int] = (-1, -1)
        self.rollups = Rollups(self._db, summaries)
        self.refresh(force=True)

    def close(self) -> None:
        self.rollups.close()
        self._db.close()

    def refresh(self, force: bool = False) -> None:
        if self.catalog.refresh(force=force):
            self.rollups.submit(self.catalog)
        with self._lock:
            version = (self.catalog.version, self.rollups.version)
            if self._views_version == version:
                return
            for kind, files in self.catalog.files.items():
                if kind in DOCUMENT_KINDS:
                    continue  # read whole by document()
                self._db.execute(f'CREATE OR REPLACE VIEW "{kind}" AS {_read_all(files)}')
            self.rollups.views(self.catalog)
            self._views_version = version
            self._cache.clear()

    def has(self, kind: str) -> bool:
        return kind in self.catalog.files

    def columns(self, kind: str) -> set[str]:
        if not self.has(kind):
            return set()
        return {row["column_name"] for row in self.query(
            f'SELECT column_name FROM (DESCRIBE SELECT * FROM "{kind}")')}

    def query(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        def rows(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
            result = cursor.execute(sql, params or [])
            names = [d[0] for d in result.description]
            return [dict(zip(names, row, strict=True)) for row in result.fetchall()]
        return self._cached(("rows", sql, tuple(params or ())), rows)

    def table(self, sql: str, params: list[Any] | None = None) -> pa.Table:
        """A query's rows as Arrow, for the parts' own functions (cached like ``query``)."""
        return self._cached(("arrow", sql, tuple(params or ())),
                            lambda cursor: arrow(cursor.sql(sql, params=params or None)))

    def _cached(self, what: tuple, compute: Any) -> Any:
        """The answer for the data as it is now, from the cache or computed once: users who
        ask the same thing while it is computed wait for that answer rather than compute it
        again (four analysts opening the morning's overview at once)."""
        self.refresh()
        key = (self._views_version, *what)
        while True:
            with self._lock:
                if key in self._cache:
                    self._cache.move_to_end(key)
                    return self._cache[key]
                running = self._running.get(key)
                if running is None:
                    self._running[key] = threading.Event()
                    break
            running.wait()
            with self._lock:
                if key not in self._cache and key not in self._running:
                    self._running[key] = threading.Event()  # the first one failed: our turn
                    break
        cursor = self._db.cursor()
        try:
            found = compute(cursor)
            with self._lock:
                self._cache[key] = found
                while len(self._cache) > CACHE_ENTRIES:
                    self._cache.popitem(last=False)
        finally:
            cursor.close()
            with self._lock:
                self._running.pop(key).set()
        return found

    def documents(self, kind: str) -> list[tuple[Path, Any]]:
        """The JSON documents of ``kind``, newest file first, parsed once per catalog
        version."""
        def parse(_: duckdb.DuckDBPyConnection) -> list[tuple[Path, Any]]:
            found = []
            for path in self.catalog.files.get(kind, []):
                try:
                    found.append((path.stat().st_mtime, path, json.loads(path.read_bytes())))
                except (OSError, ValueError):
                    continue  # replaced or broken since the catalog looked: skipped
            return [(path, doc) for _, path, doc in sorted(found, key=lambda f: -f[0])]
        return self._cached(("documents", kind), parse)

    # -- distinct hosts over a range ----------------------------------------------------------
    def port_hosts(self, ports: list[tuple[int, int]], hours: list[int]
                   ) -> tuple[dict[tuple[int, int], int], bool]:
        """Distinct sources per (proto, port) over the hours, and whether they are sketch
        estimates: merged sketches once every packet file is summarised, an exact count over
        the raw table before."""
        if not ports:
            return {}, False
        listed = ", ".join(f"({int(p)}, {int(d)})" for p, d in ports)
        if self.rollups.pending("packets"):
            v6 = "src6" if "src6" in self.columns("packets") else "NULL"
            rows = self.query(
                f"SELECT proto, dport, count(DISTINCT src) + count(DISTINCT {v6}) AS n "
                "FROM packets WHERE ts >= to_timestamp(? * 3600) AND ts < to_timestamp(? * "
                f"3600) AND (proto, dport) IN ({listed}) GROUP BY ALL", hours)
            return {(r["proto"], r["dport"]): int(r["n"]) for r in rows}, False
        rows = self.query("SELECT proto, dport, list(sketch) AS sketches FROM port_sketches "
                          f"WHERE hour >= ? AND hour < ? AND (proto, dport) IN ({listed}) "
                          "GROUP BY ALL", hours)
        return {(r["proto"], r["dport"]): round(merged_estimate(r["sketches"]))
                for r in rows}, True

    def tool_hosts(self, hours: list[int]) -> tuple[dict[str, int], bool]:
        """Distinct sources per tool family over the hours (as port_hosts)."""
        if self.rollups.pending("hosts"):
            rows = self.query("SELECT family, count(DISTINCT src) AS n FROM hosts WHERE "
                              "period_start >= to_timestamp(? * 3600) AND period_start < "
                              "to_timestamp(? * 3600) GROUP BY family", hours)
            return {r["family"]: int(r["n"]) for r in rows}, False
        rows = self.query("SELECT family, list(sketch) AS sketches FROM tool_sketches "
                          "WHERE hour >= ? AND hour < ? GROUP BY family", hours)
        return {r["family"]: round(merged_estimate(r["sketches"])) for r in rows}, True

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


def _read_all(files: list[Path]) -> str:
    """One SELECT over files of one kind, JSON Lines and Parquet alike (a crawl's listings
    are JSON Lines, a topics directory's copy of them Parquet)."""
    jsonl = [p for p in files if p.suffix == ".jsonl"]
    parquet = [p for p in files if p.suffix != ".jsonl"]
    parts = []
    if parquet:
        parts.append("SELECT * FROM read_parquet([" + ", ".join(map(_quoted, parquet))
                     + "], union_by_name=true)")
    if jsonl:
        parts.append("SELECT * FROM read_json([" + ", ".join(map(_quoted, jsonl))
                     + "], format='newline_delimited', union_by_name=true)")
    return " UNION ALL BY NAME ".join(parts)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _parse_time(text: str) -> datetime:
    """ISO 8601; a bad one raises ValueError, which pages turn into a 400 naming it. A '+'
    typed into a URL arrives as a space: '...T00:00:00 00:00' is read as '+00:00'."""
    text = re.sub(r" (\d\d:?\d\d)$", r"+\1", text.strip()).replace("Z", "+00:00")
    return _utc(datetime.fromisoformat(text))
