"""Captures (pcap, pcapng; gzip/zstd/xz) to the columnar packet table every darknet part reads.

>>> table = darkscope.packets.read("capture.pcapng")          # a pyarrow.Table
>>> for batch in darkscope.packets.iter_batches(["day1/", "day2/*.pcap.gz"]):
...     ...                                                     # bounded memory
>>> for batch in darkscope.packets.scan(["packets/", "more.pcap"], columns=["src", "dport"]):
...     ...                     # captures or packet tables written by `darkscope ingest`
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from darkscope.packets.reader import CaptureReader, OnError, ReadReport
from darkscope.packets.schema import PACKET_SCHEMA
from darkscope.packets.tables import scan

__all__ = ["PACKET_SCHEMA", "CaptureReader", "ReadReport", "iter_batches", "read", "scan"]


def iter_batches(inputs: list[str | Path] | str | Path, *, on_error: OnError = "raise",
                 batch_rows: int = 1 << 19) -> Iterator[pa.RecordBatch]:
    """Record batches of the packet table, for inputs larger than memory."""
    yield from CaptureReader(inputs, on_error=on_error, batch_rows=batch_rows)


def read(inputs: list[str | Path] | str | Path, *, on_error: OnError = "raise") -> pa.Table:
    """The whole packet table of one or more captures (files, directories or globs)."""
    reader = CaptureReader(inputs, on_error=on_error)
    return pa.Table.from_batches(list(reader), schema=PACKET_SCHEMA)
