"""Inputs that are captures or packet tables: what every darknet command accepts.

A Parquet file, or a directory holding Parquet files (the hour-partitioned datasets of
``darkscope ingest``), is read as a packet table file by file in name order (hours in time
order); anything else goes through the capture reader. Globs may match either. The caller gets
record batches of the packet schema, in input order and bounded memory.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from darkscope.errors import InputFormatError, UsageError
from darkscope.packets.reader import CaptureReader, OnError
from darkscope.packets.schema import PACKET_SCHEMA
from darkscope.packets.sources import natural_key

PARQUET_MAGIC = b"PAR1"
BATCH_ROWS = 1 << 19


def _expand(item: str | Path) -> list[Path]:
    path = Path(item)
    if path.exists():
        return [path]
    if glob.has_magic(str(item)):
        matches = sorted((Path(m) for m in glob.glob(str(item), recursive=True)), key=natural_key)
        if matches:
            return matches
        raise UsageError(f"no file matches {item}")
    raise UsageError(f"no such file or directory: {item}")


def _parquet_files(path: Path) -> list[Path] | None:
    """The Parquet files of a packet table at ``path``; None when it is not one."""
    if path.is_dir():
        files = [p for p in path.rglob("*.parquet")
                 if not any(part.startswith((".", "_")) for part in p.relative_to(path).parts)]
        return sorted(files, key=natural_key) or None
    with open(path, "rb") as handle:
        return [path] if handle.read(4) == PARQUET_MAGIC else None


def _table_batches(path: Path, columns: list[str]) -> Iterator[pa.RecordBatch]:
    try:
        handle = pq.ParquetFile(path)
        missing = [c for c in columns if c not in handle.schema_arrow.names]
        if missing:
            raise InputFormatError(path, "not a packet table: missing column(s) "
                                         f"{', '.join(missing)}")
        for group in range(handle.num_row_groups):  # row groups keep the order written
            for batch in handle.iter_batches(batch_size=BATCH_ROWS, row_groups=[group],
                                             columns=columns):
                if batch.num_rows:
                    yield batch
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputFormatError(path, f"not a readable Parquet packet table ({exc})") from None


def scan(inputs: Sequence[str | Path] | str | Path, *, columns: Sequence[str] | None = None,
         on_error: OnError = "raise") -> Iterator[pa.RecordBatch]:
    """Record batches of the packet table from captures and/or packet tables, in input order.

    ``columns`` selects columns (all of the schema by default); Parquet inputs read only those.
    """
    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    if not items:
        raise UsageError("no input given")
    wanted = list(columns) if columns is not None else PACKET_SCHEMA.names
    captures: list[Path] = []
    for path in (p for item in items for p in _expand(item)):
        tables = _parquet_files(path)
        if tables is None:
            captures.append(path)
            continue
        if captures:
            yield from _select(CaptureReader(captures, on_error=on_error), wanted)
            captures = []
        for table in tables:
            yield from _table_batches(table, wanted)
    if captures:
        yield from _select(CaptureReader(captures, on_error=on_error), wanted)


def _select(batches: CaptureReader, columns: list[str]) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        yield batch.select(columns)
