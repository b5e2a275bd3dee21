"""Summaries the pages read instead of the raw tables, built once per file and kept on disk.

Why: asked of the raw Parquet, the overview's top ports and hourly chart and an IP page's
packets each scan a whole day of packets (26 M rows for a /16) per request, seconds each.
Per verdict or packet file, once, in a background thread, this builds:

- ``verdict_hours``: packets, windows and hosts per hour and verdict;
- ``port_hours``: packets per hour, protocol and destination port;
- ``port_sketches``: a HyperLogLog sketch (Apache DataSketches, lg k = 14: ±0.8 %) of the
  sources of each hour's busiest ``PORTS_PER_HOUR`` ports. Distinct hosts do not add up over
  hours, and an exact count over a day's scanners of port 23 alone is a hash of millions of
  rows; sketches merge in a millisecond whatever the range. Backscatter spreads over tens of
  thousands of random ports an hour, which never reach a top ten: they are left out;
- ``verdicts_by_src``: the verdicts ordered by source (a feature column is added the first time
  a file has it: the names follow the feature version), for the same reason as
- ``packets_by_src``: the IP page's packet columns ordered by source, so DuckDB's per-row-group
  min/max skips all but one or two row groups per file (an IP page in tens of milliseconds;
  the price is a copy of those columns, about 16 bytes a packet, more for payload heads).

The summaries live in a DuckDB file beside the store (derived data: delete it any time, it is
rebuilt). A file the builder has not reached yet is summarised on the fly by the same SQL, so
pages are always complete, only slower until it catches up; a changed or removed file's rows
are dropped.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
from datasketches import hll_sketch, hll_union

from darkscope.catalog import Catalog

log = logging.getLogger(__name__)

SCHEMA = 2  # 2: packets_by_src has tcp_layout and payload_head
PORTS_PER_HOUR = 64
SKETCH_LG_K = 14
HOUR_NS = 3_600_000_000_000
# verdict columns that are not one of the 17 features (any other column is one)
VERDICT_FIXED = frozenset({"src", "src6", "window_start", "window_end", "packets", "verdict",
                           "decided_by", "confidence", "model_version", "context_packets",
                           "date", "hour"})
PACKET_COLUMNS = ("ts", "src", "src6", "dst", "dst6", "proto", "sport", "dport", "tcp_flags",
                  "ttl", "ip_id", "win", "tos", "ip_len", "tcp_layout", "payload_head")


@dataclass(frozen=True)
class Summary:
    name: str
    kind: str      # the catalog kind it is made from
    columns: str   # its columns (DDL), after file_id
    select: str    # SQL over {source}: one file, or every pending file at once
    sketched: bool = False  # rows (group..., src, src6) become one sketch per group
    features: bool = False  # also every column not in VERDICT_FIXED, as DOUBLE


def _host_count(v4: str, v6: str) -> str:
    return f"count(DISTINCT {v4}) + count(DISTINCT {v6})"


SUMMARIES = (
    Summary("verdict_hours", "verdicts",
            "hour BIGINT, verdict VARCHAR, packets BIGINT, windows BIGINT, hosts BIGINT",
            f"SELECT epoch_ns(window_start) // {HOUR_NS} AS hour, verdict, "
            "sum(packets)::BIGINT AS packets, count(*) AS windows, "
            f"{_host_count('src', '{src6}')} AS hosts FROM {{source}} GROUP BY ALL"),
    Summary("port_hours", "packets",
            "hour BIGINT, proto UTINYINT, dport USMALLINT, packets BIGINT, with_sources BOOLEAN",
            "SELECT hour, proto, dport, packets, row_number() OVER (PARTITION BY hour ORDER BY "
            f"packets DESC, proto, dport) <= {PORTS_PER_HOUR} AS with_sources FROM ("
            f"SELECT epoch_ns(ts) // {HOUR_NS} AS hour, proto, dport, count(*) AS packets "
            "FROM {source} WHERE dport IS NOT NULL GROUP BY ALL)"),
    Summary("port_sketches", "packets",
            "hour BIGINT, proto UTINYINT, dport USMALLINT, sketch BLOB",
            f"WITH p AS (SELECT epoch_ns(ts) // {HOUR_NS} AS hour, proto, dport, src, "
            "{src6} AS src6 FROM {source} WHERE dport IS NOT NULL), "
            "busiest AS (SELECT hour, proto, dport FROM (SELECT hour, proto, dport, "
            "row_number() OVER (PARTITION BY hour ORDER BY count(*) DESC, proto, dport) AS r "
            f"FROM p GROUP BY hour, proto, dport) WHERE r <= {PORTS_PER_HOUR}) "
            "SELECT DISTINCT hour, proto, dport, src, src6 FROM p "
            "SEMI JOIN busiest USING (hour, proto, dport) ORDER BY hour, proto, dport",
            sketched=True),
    Summary("tool_sketches", "hosts", "hour BIGINT, family VARCHAR, sketch BLOB",
            f"SELECT epoch_ns(period_start) // {HOUR_NS} AS hour, family, src, "
            "NULL::BLOB AS src6 FROM {source} ORDER BY hour, family", sketched=True),
    Summary("verdicts_by_src", "verdicts",
            "src UINTEGER, src6 VARCHAR, window_start TIMESTAMPTZ_NS, window_end TIMESTAMPTZ_NS, "
            "packets BIGINT, verdict VARCHAR, decided_by VARCHAR, confidence DOUBLE, "
            "model_version VARCHAR, context_packets BIGINT",
            "SELECT src, {src6_text} AS src6, window_start, window_end, packets, verdict, "
            "decided_by, confidence, {model_version} AS model_version, {context_packets} AS "
            "context_packets{features} FROM {source} ORDER BY src, src6, window_start",
            features=True),
    Summary("packets_by_src", "packets",
            "ts TIMESTAMPTZ_NS, src UINTEGER, src6 BLOB, dst UINTEGER, dst6 BLOB, proto UTINYINT, "
            "sport USMALLINT, dport USMALLINT, tcp_flags UTINYINT, ttl UTINYINT, "
            "ip_id USMALLINT, win USMALLINT, tos UTINYINT, ip_len UINTEGER, tcp_layout VARCHAR, "
            "payload_head BLOB",
            "SELECT {packet_columns} FROM {source} ORDER BY src, src6, ts"),
)
KINDS = frozenset(s.kind for s in SUMMARIES)


def _quoted(path: Path | str) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def feature_columns(names: set[str]) -> list[str]:
    """The feature columns among a verdict table's columns (names without a double quote:
    they are spliced into SQL as identifiers)."""
    return sorted(n for n in names - VERDICT_FIXED if '"' not in n)


def _source(paths: list[Path]) -> str:
    return f"read_parquet([{', '.join(_quoted(p) for p in paths)}], union_by_name=true)"


class Rollups:
    """The summary tables in ``path`` (attached to ``db`` as ``cache``), a builder thread,
    and views that join them with on-the-fly summaries of files not yet built."""

    def __init__(self, db: duckdb.DuckDBPyConnection, path: Path | None) -> None:
        self._db = db
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._stop = False
        self._catalog: Catalog | None = None
        self._pending: set[str] = set()
        self._schemas: dict[tuple, set[str]] = {}
        self._building: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()
        self.version = 0
        self.path = self._attach(path)
        self._create()
        self._thread = threading.Thread(target=self._run, name="rollups", daemon=True)
        self._thread.start()

    def _attach(self, path: Path | None) -> Path | None:
        """The file, or memory when there is none or another process holds it (DuckDB
        files have one writer): pages stay right, the summaries are rebuilt per start."""
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._db.execute(f"ATTACH {_quoted(path)} AS cache")
                return path
            except (OSError, duckdb.Error) as exc:
                log.warning("summaries kept in memory: %s: %s", path, exc)
        self._db.execute("ATTACH ':memory:' AS cache")
        return None

    def _create(self) -> None:
        cursor = self._db.cursor()
        cursor.execute("CREATE TABLE IF NOT EXISTS cache.meta (schema INTEGER)")
        found = cursor.execute("SELECT max(schema) FROM cache.meta").fetchone()[0]
        if found != SCHEMA:  # another layout (or new): start again, it is derived data
            for summary in SUMMARIES:
                cursor.execute(f"DROP TABLE IF EXISTS cache.{summary.name}")
            cursor.execute("DROP TABLE IF EXISTS cache.files")
            cursor.execute("DELETE FROM cache.meta")
            cursor.execute("INSERT INTO cache.meta VALUES (?)", [SCHEMA])
        cursor.execute("CREATE TABLE IF NOT EXISTS cache.files (file_id INTEGER, kind VARCHAR, "
                       "path VARCHAR, size BIGINT, mtime_ns BIGINT)")
        for summary in SUMMARIES:
            cursor.execute(f"CREATE TABLE IF NOT EXISTS cache.{summary.name} "
                           f"(file_id INTEGER, {summary.columns})")
        cursor.close()

    # -- what pages read --------------------------------------------------------------------
    def views(self, catalog: Catalog) -> None:
        """(Re)define one view per summary over the catalog's current files: built rows of
        files unchanged since, plus the same SQL over the rest."""
        built = self._built()
        self._pending = set()
        keys = {path: catalog.key(path) for kind in KINDS for path in catalog.files.get(kind, [])}
        for summary in SUMMARIES:
            files = catalog.files.get(summary.kind, [])
            ready = [built[keys[p]] for p in files if keys[p] in built]
            pending = [p for p in files if keys[p] not in built]
            if pending:
                self._pending.add(summary.kind)
            parts = []
            if ready:
                parts.append(f"SELECT * EXCLUDE (file_id) FROM cache.{summary.name} "
                             f"WHERE file_id IN ({', '.join(map(str, ready))})")
            if pending and not summary.sketched:
                parts.append(self._sql(summary, pending, columns=self._columns(
                    [keys[p] for p in pending], pending)))
            if not parts:
                parts.append(f"SELECT * EXCLUDE (file_id) FROM cache.{summary.name} WHERE false")
            self._db.execute(f"CREATE OR REPLACE VIEW {summary.name} AS "
                             + " UNION ALL BY NAME ".join(parts))

    def pending(self, kind: str) -> bool:
        """Whether some file of ``kind`` had no built summaries at the last ``views`` (sketches
        are only read from built files: pages count those hosts the slow, exact way)."""
        return kind in self._pending

    def status(self) -> dict[str, object]:
        """For operators (the catalog API): where the summaries are, how many files they
        cover, and the kinds still being summarised."""
        return {"path": None if self.path is None else str(self.path),
                "files": len(self._built()), "pending": sorted(self._pending)}

    def _columns(self, keys: list[tuple[str, int, int]], paths: list[Path]) -> set[str]:
        """The columns of these files read together, asked once per set of file versions
        (every summary of a kind asks the same)."""
        memo = tuple(keys)
        found = self._schemas.get(memo)
        if found is None:
            if len(self._schemas) > 64:
                self._schemas.clear()
            found = {d[0] for d in self._db.execute(
                f"SELECT * FROM {_source(paths)} LIMIT 0").description}
            self._schemas[memo] = found
        return found

    def _sql(self, summary: Summary, paths: list[Path],
             cursor: duckdb.DuckDBPyConnection | None = None,
             columns: set[str] | None = None) -> str:
        source = _source(paths)
        reader = cursor or self._db
        names = columns if columns is not None else {
            d[0] for d in reader.execute(f"SELECT * FROM {source} LIMIT 0").description}
        def have(column: str, cast: str) -> str:
            return f'"{column}"' if column in names else f"NULL::{cast}"

        features = "".join(f', "{f}"::DOUBLE AS "{f}"' for f in feature_columns(names))
        packet_columns = ", ".join(
            c if c in names else f"NULL AS {c}" for c in PACKET_COLUMNS)
        return "(" + summary.select.format(
            source=source, src6=have("src6", "BLOB"), src6_text=have("src6", "VARCHAR"),
            model_version=have("model_version", "VARCHAR"),
            context_packets=have("context_packets", "BIGINT"), features=features,
            packet_columns=packet_columns) + ")"

    def _built(self) -> dict[tuple[str, int, int], int]:
        cursor = self._db.cursor()
        try:
            rows = cursor.execute("SELECT path, size, mtime_ns, file_id FROM cache.files"
                                  ).fetchall()
        finally:
            cursor.close()
        return {(path, size, mtime): file_id for path, size, mtime, file_id in rows}

    # -- the builder --------------------------------------------------------------------------
    def submit(self, catalog: Catalog) -> None:
        """The catalog changed: build what is missing, drop what is gone."""
        with self._lock:
            self._catalog = catalog
            self._idle.clear()
        self._wake.set()

    def wait(self, timeout: float) -> bool:
        """Block until every submitted file is built (tests, benchmarks); False on timeout."""
        return self._idle.wait(timeout)

    def close(self) -> None:
        """Stop the builder: a build under way is interrupted (and rolled back)."""
        self._stop = True
        self._wake.set()
        building = self._building
        if building is not None:
            building.interrupt()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                catalog = self._catalog
            if catalog is None:
                continue
            try:
                self._sync(catalog)
            except duckdb.Error as exc:  # a file that vanished or broke mid-build: next time
                if not self._stop:
                    log.warning("summaries: %s", exc)
            except Exception:  # never leave waiters hanging; pages read the raw files
                log.exception("summaries: the builder failed")
            if not self._wake.is_set():
                self._idle.set()

    def _sync(self, catalog: Catalog) -> None:
        wanted = {(kind, catalog.key(path)): path for kind in KINDS
                  for path in catalog.files.get(kind, [])}
        built = self._built()
        cursor = self._db.cursor()
        self._building = cursor
        try:
            kinds = {row[0]: row[1] for row in cursor.execute(
                "SELECT file_id, kind FROM cache.files").fetchall()}
            gone = [fid for key, fid in built.items()
                    if (kinds[fid], key) not in wanted]
            if gone:
                self._drop(cursor, gone)
            next_id = max(built.values(), default=0) + 1
            for (kind, key), path in sorted(wanted.items(), key=lambda item: str(item[1])):
                if key in built or self._stop or self._wake.is_set():
                    continue
                self._build(cursor, kind, path, key, next_id)
                next_id += 1
        finally:
            self._building = None
            cursor.close()

    def _drop(self, cursor: duckdb.DuckDBPyConnection, ids: list[int]) -> None:
        listed = ", ".join(map(str, ids))
        cursor.execute("BEGIN")
        for summary in SUMMARIES:
            cursor.execute(f"DELETE FROM cache.{summary.name} WHERE file_id IN ({listed})")
        cursor.execute(f"DELETE FROM cache.files WHERE file_id IN ({listed})")
        cursor.execute("COMMIT")
        self._changed()

    def _build(self, cursor: duckdb.DuckDBPyConnection, kind: str, path: Path,
               key: tuple[str, int, int], file_id: int) -> None:
        cursor.execute("BEGIN")
        try:
            for summary in SUMMARIES:
                if summary.kind != kind:
                    continue
                select = self._sql(summary, [path], cursor)
                if summary.features:
                    self._add_feature_columns(cursor, summary, path)
                if summary.sketched:
                    cursor.register("sketched", _sketches(arrow(cursor.sql(select))))
                    select = "sketched"
                cursor.execute(f"INSERT INTO cache.{summary.name} BY NAME "
                               f"SELECT {file_id} AS file_id, * FROM {select}")
                if summary.sketched:
                    cursor.unregister("sketched")
            cursor.execute("INSERT INTO cache.files VALUES (?, ?, ?, ?, ?)",
                           [file_id, kind, *key])
            cursor.execute("COMMIT")
        except duckdb.Error:
            cursor.execute("ROLLBACK")
            raise
        self._changed()

    def _add_feature_columns(self, cursor: duckdb.DuckDBPyConnection, summary: Summary,
                             path: Path) -> None:
        have = {d[0] for d in cursor.execute(
            f"SELECT * FROM cache.{summary.name} LIMIT 0").description}
        names = {d[0] for d in cursor.execute(
            f"SELECT * FROM {_source([path])} LIMIT 0").description}
        for name in feature_columns(names):
            if name not in have:
                cursor.execute(f'ALTER TABLE cache.{summary.name} ADD COLUMN "{name}" DOUBLE')

    def _changed(self) -> None:
        with self._lock:
            self.version += 1


def _sketches(rows: pa.Table) -> pa.Table:
    """(group columns..., src, src6) rows ordered by group -> one serialised sketch per
    group. DataSketches takes one value per call: this loops over the distinct sources of
    each hour's busiest ports (a third of a day's packets' worth of calls, 0.2 µs each), in
    the builder thread, never in a request."""
    names = [n for n in rows.column_names if n not in ("src", "src6")]
    keys = [rows.column(n).to_numpy(zero_copy_only=False) for n in names]
    src = rows.column("src").to_pylist()
    src6 = rows.column("src6").to_pylist()
    n = rows.num_rows
    starts = np.flatnonzero(np.r_[True, np.any([k[1:] != k[:-1] for k in keys], axis=0)]
                            if n else np.zeros(0, bool))
    ends = np.r_[starts[1:], n].astype(int)
    blobs = []
    for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
        sketch = hll_sketch(SKETCH_LG_K)
        for v4, v6 in zip(src[lo:hi], src6[lo:hi], strict=True):
            sketch.update(v4 if v4 is not None else v6.hex())
        blobs.append(sketch.serialize_compact())
    return pa.table({**{n: k[starts] for n, k in zip(names, keys, strict=True)},
                     "sketch": pa.array(blobs, pa.binary())})


def arrow(relation: duckdb.DuckDBPyRelation) -> pa.Table:
    """A query's rows as an Arrow table (DuckDB 2 renamed ``arrow`` ``to_arrow_table``)."""
    fetch = getattr(relation, "to_arrow_table", None) or relation.arrow
    return fetch()


def merged_estimate(blobs: list[bytes]) -> float:
    """Distinct hosts over several hours' sketches of one port."""
    union = hll_union(SKETCH_LG_K)
    for blob in blobs:
        union.update(hll_sketch.deserialize(blob))
    return union.get_estimate()

