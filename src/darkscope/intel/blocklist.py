"""Blocklists: one row per scanning source, for firewalls, SIEM lookups and jq."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa

from darkscope.intel.findings import EPOCH, Source
from darkscope.io import write_table

BLOCKLIST_SCHEMA = pa.schema([
    ("ip", pa.string()),
    ("first_seen", pa.timestamp("s", tz="UTC")),
    ("last_seen", pa.timestamp("s", tz="UTC")),
    ("kind", pa.string()),
    ("tags", pa.string()),          # ';'-separated: tool:mirai;decided-by:rule:tcp-syn
    ("confidence", pa.float64()),
])
_SECOND = timedelta(seconds=1)


def _seconds(times: list[datetime]) -> pa.Array:
    """Datetimes as timestamp[s] through integers (pyarrow converts datetimes slowly)."""
    return pa.array([(t - EPOCH) // _SECOND for t in times], pa.int64()).cast(
        pa.timestamp("s", tz="UTC"))


def blocklist_table(sources: list[Source]) -> pa.Table:
    return pa.table({
        "ip": [s.ip for s in sources],
        "first_seen": _seconds([s.first_seen for s in sources]),
        "last_seen": _seconds([s.last_seen for s in sources]),
        "kind": ["scanner"] * len(sources),
        "tags": [";".join(s.tags) for s in sources],
        "confidence": [round(s.confidence, 4) for s in sources],
    }, schema=BLOCKLIST_SCHEMA)


def write_blocklist(sources: list[Source], path: str | Path, fmt: str,
                    overwrite: bool) -> Path:
    return write_table(blocklist_table(sources), path, fmt, overwrite=overwrite)
