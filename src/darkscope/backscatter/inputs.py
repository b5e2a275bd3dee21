"""Packets for detection: captures (any format ``darkscope.packets`` reads) or Parquet packet
tables from ``darkscope ingest`` / ``darkscope simulate --table`` (a file or a Hive dataset)."""

from __future__ import annotations

import glob
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from darkscope import packets
from darkscope.errors import DarkscopeError, InputFormatError, UsageError

COLUMNS = ("ts", "src", "dst", "proto", "sport", "dport", "tcp_flags", "payload_len",
           "icmp_type", "inner_src", "payload_head")


def _is_parquet_file(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"PAR1"
    except OSError:
        return False


def _parquet_parts(path: Path) -> list[Path] | None:
    """The Parquet files of ``path`` when it is a Parquet file or a directory of them."""
    if path.is_file():
        return [path] if _is_parquet_file(path) else None
    if path.is_dir():
        parts = sorted(p for p in path.rglob("*.parquet") if not any(
            q.startswith(".") for q in p.relative_to(path).parts))
        return parts or None
    return None


def _expand(item: str | Path) -> list[Path]:
    text = str(item)
    if any(ch in text for ch in "*?["):
        matches = sorted(Path(p) for p in glob.glob(text, recursive=True))
        if not matches:
            raise UsageError(f"{text}: no file matches")
        return matches
    path = Path(text)
    if not path.exists():
        raise UsageError(f"{path}: no such file or directory")
    return [path]


def _read_parquet(path: Path, files: list[Path]) -> pa.Table:
    try:
        dataset = ds.dataset([str(f) for f in files], format="parquet")
        missing = [c for c in COLUMNS if c not in dataset.schema.names]
        if missing:
            raise InputFormatError(path, f"not a packet table: missing column(s) "
                                         f"{', '.join(missing)}")
        return dataset.to_table(columns=list(COLUMNS))
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputFormatError(path, f"cannot read Parquet: {exc}") from None


def read_packets(inputs: list[str | Path] | str | Path) -> pa.Table:
    """The columns the detector needs, from captures and/or packet tables; IPv4 rows only."""
    items = [inputs] if isinstance(inputs, str | Path) else list(inputs)
    if not items:
        raise UsageError("no input given")
    tables: list[pa.Table] = []
    captures: list[Path] = []
    for item in items:
        for path in _expand(item):
            parts = _parquet_parts(path)
            if parts is not None:
                tables.append(_read_parquet(path, parts))
            else:
                captures.append(path)
    if captures:
        table = packets.read(captures)
        tables.append(table.select(list(COLUMNS)))
    table = pa.concat_tables([t.cast(tables[0].schema) for t in tables]) if len(tables) > 1 \
        else tables[0]
    table = table.filter(pc.and_(pc.is_valid(table["src"]), pc.is_valid(table["ts"])))
    if table.num_rows == 0:
        names = ", ".join(str(i) for i in items)
        raise DarkscopeError(f"{names}: no IPv4 packets with a timestamp to classify")
    return table
