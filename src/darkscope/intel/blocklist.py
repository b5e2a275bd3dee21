"""Blocklists: one row per scanning source, for firewalls, SIEM lookups and jq."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from darkscope.intel.findings import Source
from darkscope.io import write_table

BLOCKLIST_SCHEMA = pa.schema([
    ("ip", pa.string()),
    ("first_seen", pa.timestamp("s", tz="UTC")),
    ("last_seen", pa.timestamp("s", tz="UTC")),
    ("kind", pa.string()),
    ("tags", pa.string()),          # ';'-separated: tool:mirai;decided-by:rule:tcp-syn
    ("confidence", pa.float64()),
])


def blocklist_table(sources: list[Source]) -> pa.Table:
    return pa.table({
        "ip": [s.ip for s in sources],
        "first_seen": [s.first_seen for s in sources],
        "last_seen": [s.last_seen for s in sources],
        "kind": ["scanner"] * len(sources),
        "tags": [";".join(s.tags) for s in sources],
        "confidence": [round(s.confidence, 4) for s in sources],
    }, schema=BLOCKLIST_SCHEMA)


def write_blocklist(sources: list[Source], path: str | Path, fmt: str,
                    overwrite: bool) -> Path:
    return write_table(blocklist_table(sources), path, fmt, overwrite=overwrite)
