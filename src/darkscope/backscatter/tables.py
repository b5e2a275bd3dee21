"""Reading the small tables users hand to the detector (verdicts, truth) by file suffix."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from darkscope.errors import InputFormatError, UsageError


def read_table(path: str | Path, what: str) -> pa.Table:
    """A Parquet, CSV or JSON Lines table (by suffix); what was wrong named in one line."""
    target = Path(path)
    if not target.exists():
        raise UsageError(f"{what} {target}: no such file")
    if target.is_dir():
        raise UsageError(f"{what} {target} is a directory; give the table file")
    suffix = target.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".ndjson") and not _starts_like_parquet(target):
        raise InputFormatError(target, f"{what}: not a Parquet file (no PAR1 magic); "
                                       "give a .parquet, .csv or .jsonl table")
    try:
        if suffix == ".csv":
            return pacsv.read_csv(target)
        if suffix in (".jsonl", ".ndjson"):
            return pajson.read_json(target)
        return pq.read_table(target)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputFormatError(target, f"cannot read the {what}: {exc}") from None


def _starts_like_parquet(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) == b"PAR1"
