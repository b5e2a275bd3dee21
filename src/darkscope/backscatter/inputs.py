"""Packets for detection: captures (any format ``darkscope.packets`` reads) or Parquet packet
tables from ``darkscope ingest`` / ``darkscope simulate --table`` (a file or a Hive dataset)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from darkscope import packets
from darkscope.errors import DarkscopeError

COLUMNS = ("ts", "src", "dst", "src6", "dst6", "proto", "sport", "dport", "tcp_flags",
           "payload_len", "icmp_type", "inner_src", "inner_src6", "payload_head")
SCHEMA = pa.schema([packets.PACKET_SCHEMA.field(c) for c in COLUMNS])


def detector_rows(table: pa.Table) -> pa.Table:
    """The detector's columns of a packet table: IPv4 and IPv6 rows with a timestamp."""
    # packet tables written before IPv6 columns existed have IPv4 rows only
    for name in ("src6", "dst6", "inner_src6"):
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows, SCHEMA.field(name).type))
    table = table.select(list(COLUMNS)).cast(SCHEMA)
    source = pc.or_(pc.is_valid(table["src"]), pc.is_valid(table["src6"]))
    return table.filter(pc.and_(source, pc.is_valid(table["ts"])))


def iter_packets(inputs: list[str | Path] | str | Path) -> Iterator[pa.Table]:
    """The detector's columns, batch by batch (bounded memory), inputs in the order given;
    IPv4 and IPv6 rows with a timestamp only."""
    for batch in packets.scan(inputs, columns=COLUMNS):
        yield detector_rows(pa.Table.from_batches([batch]))


def read_packets(inputs: list[str | Path] | str | Path) -> pa.Table:
    """The columns the detector needs, from captures and/or packet tables; IP rows only."""
    tables = list(iter_packets(inputs))
    table = pa.concat_tables(tables) if tables else None
    if table is None or table.num_rows == 0:
        raise DarkscopeError(f"{_names(inputs)}: no IPv4 or IPv6 packets with a timestamp to "
                             "classify")
    return table.combine_chunks()


def _names(inputs: list[str | Path] | str | Path) -> str:
    return ", ".join(str(i) for i in ([inputs] if isinstance(inputs, str | Path) else inputs))


class WindowChunks:
    """Tables of whole time spans (``span_s``, aligned to the epoch: the time window, or the
    context span that holds several), each of at least ``chunk_rows`` packets (except the
    last), so that detection runs in bounded memory over time-ordered input (captures and
    ingest output are). Without a span (packet-count windows) everything is one table.

    :attr:`late_rows` counts packets older than an already closed span (out-of-order input);
    such a span appears twice in the verdicts, once per part."""

    def __init__(self, inputs: list[str | Path] | str | Path, span_s: int | None,
                 chunk_rows: int = 1 << 22) -> None:
        self.inputs = inputs
        self.span_s = span_s
        self.chunk_rows = chunk_rows
        self.late_rows = 0

    def __iter__(self) -> Iterator[pa.Table]:
        if self.span_s is None:
            yield read_packets(self.inputs)
            return
        span_ns = self.span_s * 1_000_000_000
        pending: list[pa.Table] = []
        rows = 0
        oldest: int | None = None  # the earliest and latest timestamps pending
        newest: int | None = None
        closed_until: int | None = None
        for table in iter_packets(self.inputs):
            if not table.num_rows:
                continue
            ts = table["ts"].cast(pa.int64()).to_numpy()
            if closed_until is not None:
                self.late_rows += int(np.count_nonzero(ts < closed_until))
            low, high = int(ts.min()), int(ts.max())
            oldest = low if oldest is None else min(oldest, low)
            newest = high if newest is None else max(newest, high)
            pending.append(table)
            rows += table.num_rows
            cut = newest // span_ns * span_ns  # the newest span stays open
            # Only cut when a span can close: while one long span fills, tables just queue
            # (joining them at every batch would copy the span over and over).
            if rows < self.chunk_rows or oldest >= cut:
                continue
            whole = pa.concat_tables(pending)
            done = pc.less(whole["ts"].cast(pa.int64()), cut)
            closed_until = cut if closed_until is None else max(closed_until, cut)
            yield whole.filter(done).combine_chunks()
            rest = whole.filter(pc.invert(done))
            pending, rows = [rest], rest.num_rows
            oldest = int(pc.min(rest["ts"].cast(pa.int64())).as_py()) if rows else None
            newest = newest if rows else None
        if rows:
            yield pa.concat_tables(pending).combine_chunks()
        elif closed_until is None:
            raise DarkscopeError(f"{_names(self.inputs)}: no IPv4 or IPv6 packets with a "
                                 "timestamp to classify")
