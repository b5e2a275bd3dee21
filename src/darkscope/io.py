"""Atomic outputs and the table formats users pipe into DuckDB, pandas and jq.

An interrupted run must never leave a file that looks complete: everything is written under a
temporary name beside the target and renamed into place only once it is whole.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from darkscope.errors import OutputExistsError, UsageError

FORMATS = ("parquet", "csv", "jsonl")


def check_output(path: str | Path, overwrite: bool) -> Path:
    """Fail early, before any work, when the output exists and may not be replaced."""
    target = Path(path)
    if target.exists() and not overwrite:
        raise OutputExistsError(f"{target} exists; pass --overwrite to replace it")
    if not target.parent.exists():
        raise UsageError(f"output directory {target.parent} does not exist")
    return target


@contextmanager
def atomic_path(path: str | Path, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path in the target's directory; rename it onto ``path`` on success.

    Works for files and directories alike. On error the temporary is removed and any existing
    ``path`` is left untouched.
    """
    target = check_output(path, overwrite)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    staged = tmp / target.name
    try:
        yield staged
        if not staged.exists():
            raise RuntimeError(f"nothing was written to {staged}")
        if target.is_dir() and not target.is_symlink():
            # A directory cannot be replaced by rename(2): move the old one aside first.
            old = tmp / (target.name + ".old")
            target.rename(old)
            staged.rename(target)
        else:
            os.replace(staged, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def format_from_path(path: str | Path, explicit: str | None = None) -> str:
    """The output format: ``explicit`` if given, else from the file suffix, else Parquet."""
    if explicit:
        if explicit not in FORMATS:
            raise UsageError(f"unknown format {explicit!r}; choose one of {', '.join(FORMATS)}")
        return explicit
    suffix = Path(path).suffix.lower()
    return {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(suffix, "parquet")


def _jsonable(value: object) -> object:
    if isinstance(value, bytes):
        return value.hex()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def write_table(table: pa.Table, path: str | Path, fmt: str | None = None,
                overwrite: bool = True) -> Path:
    """Write ``table`` atomically as Parquet, CSV or JSON Lines (binary columns as hex text)."""
    fmt = format_from_path(path, fmt)
    with atomic_path(path, overwrite) as tmp:
        if fmt == "parquet":
            pq.write_table(table, tmp, compression="zstd")
        else:
            with open(tmp, "wb") as out:
                dump_table(table, out, fmt)
    return Path(path)


def write_json(document: object, path: str | Path, overwrite: bool = True) -> Path:
    """Write one JSON document atomically (reports: evaluation scores, benchmark results)."""
    with atomic_path(path, overwrite) as tmp:
        tmp.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return Path(path)


def dump_table(table: pa.Table, stream: BinaryIO, fmt: str) -> None:
    """Write ``table`` as CSV or JSON Lines to an open binary stream (a file, stdout)."""
    if fmt == "csv":
        pacsv.write_csv(_textual(table), stream)
        return
    if fmt != "jsonl":
        raise UsageError(f"{fmt} cannot be streamed; choose csv or jsonl")
    for batch in table.to_batches(max_chunksize=65536):
        lines = [json.dumps({k: _jsonable(v) for k, v in row.items()}) + "\n"
                 for row in batch.to_pylist()]
        stream.write("".join(lines).encode())


def _textual(table: pa.Table) -> pa.Table:
    """CSV has no binary type: show binary columns as hex so no byte is lost or mangled."""
    columns = []
    for field, column in zip(table.schema, table.columns, strict=True):
        if pa.types.is_binary(field.type) or pa.types.is_fixed_size_binary(field.type):
            column = pa.array([None if v is None else v.hex() for v in column.to_pylist()],
                              pa.string())
        columns.append(column)
    return pa.table(columns, names=table.column_names)
