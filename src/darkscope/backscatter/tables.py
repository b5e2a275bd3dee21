"""Reading the small tables users hand to the detector (verdicts, truth) by file suffix."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from darkscope.errors import InputFormatError, UsageError


def read_table(path: str | Path, what: str) -> pa.Table:
    target = Path(path)
    if not target.exists():
        raise UsageError(f"{what} {target}: no such file")
    try:
        suffix = target.suffix.lower()
        if suffix == ".csv":
            return pacsv.read_csv(target)
        if suffix in (".jsonl", ".ndjson"):
            return pajson.read_json(target)
        return pq.read_table(target)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputFormatError(target, f"cannot read the {what}: {exc}") from None
