"""Inputs that are captures or packet tables: what every darknet command accepts.

A Parquet file, or a directory holding Parquet files (the hour-partitioned datasets of
``darkscope ingest``), is read as a packet table; anything else goes through the capture reader.
Either way the caller gets record batches of the packet schema, in bounded memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds

from darkscope.errors import InputFormatError
from darkscope.packets.reader import CaptureReader, OnError
from darkscope.packets.schema import PACKET_SCHEMA

PARQUET_MAGIC = b"PAR1"


def _is_table(path: Path) -> bool:
    if path.is_dir():
        return any(path.rglob("*.parquet"))
    if path.is_file():
        with open(path, "rb") as handle:
            return handle.read(4) == PARQUET_MAGIC
    return False


def _table_batches(path: Path, columns: Sequence[str] | None) -> Iterator[pa.RecordBatch]:
    try:
        dataset = ds.dataset(path, format="parquet", partitioning="hive",
                             exclude_invalid_files=True)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputFormatError(path, f"not a readable Parquet packet table ({exc})") from None
    names = set(dataset.schema.names)
    wanted = list(columns) if columns is not None else PACKET_SCHEMA.names
    missing = [c for c in wanted if c not in names]
    if missing:
        raise InputFormatError(path, "not a packet table: missing column(s) "
                                     f"{', '.join(missing)}")
    for batch in dataset.to_batches(columns=wanted):
        if batch.num_rows:
            yield batch


def scan(inputs: Sequence[str | Path] | str | Path, *, columns: Sequence[str] | None = None,
         on_error: OnError = "raise") -> Iterator[pa.RecordBatch]:
    """Record batches of the packet table from captures and/or packet tables, in order.

    ``columns`` selects columns (all of the schema by default); Parquet inputs read only those.
    """
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    captures: list[str | Path] = []
    for item in inputs:
        path = Path(item)
        if _is_table(path):
            if captures:
                yield from _select(CaptureReader(captures, on_error=on_error), columns)
                captures = []
            yield from _table_batches(path, columns)
        else:
            captures.append(item)
    if captures:
        yield from _select(CaptureReader(captures, on_error=on_error), columns)


def _select(batches: CaptureReader, columns: Sequence[str] | None) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        yield batch if columns is None else batch.select(list(columns))
