"""Write packet batches as one Parquet file or a Parquet dataset partitioned by hour.

Both are written under a temporary name and renamed when complete, so a crash never leaves a
file or directory that looks finished. Partitions are Hive-style (``hour=2016-08-06T13/``),
which DuckDB, pandas, Polars and Spark read as one dataset.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from darkscope.io import atomic_path
from darkscope.packets.schema import PACKET_SCHEMA

Partition = Literal["none", "hour"]
NS_PER_HOUR = 3_600_000_000_000
MAX_OPEN_PARTITIONS = 64


@dataclass
class Summary:
    """Running totals over written batches, for the command's report."""

    packets: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    protocols: dict[str, int] = field(default_factory=dict)
    _sources: list[np.ndarray] = field(default_factory=list)
    _sources6: list[np.ndarray] = field(default_factory=list)

    def add(self, batch: pa.RecordBatch) -> None:
        self.packets += batch.num_rows
        ts = pc.min_max(batch.column("ts").cast(pa.int64()))
        low, high = ts["min"].as_py(), ts["max"].as_py()
        if low is not None:
            self.first_ns = low if self.first_ns is None else min(self.first_ns, low)
            self.last_ns = high if self.last_ns is None else max(self.last_ns, high)
        counts = pc.value_counts(batch.column("proto"))
        for item in counts.to_pylist():
            name = _PROTO_NAMES.get(item["values"], str(item["values"]))
            self.protocols[name] = self.protocols.get(name, 0) + item["counts"]
        self._add_unique(self._sources, batch.column("src").drop_null().to_numpy())
        src6 = batch.column("src6").drop_null()
        if len(src6):
            raw = np.frombuffer(src6.buffers()[1], np.uint8)[src6.offset * 16:]
            self._add_unique(self._sources6, raw[: len(src6) * 16].view("V16"))

    @staticmethod
    def _add_unique(parts: list[np.ndarray], values: np.ndarray) -> None:
        """Keep distinct values in a few sorted arrays (memory: one entry per source)."""
        if len(values):
            parts.append(np.unique(values))
            if len(parts) > 16:
                parts[:] = [np.unique(np.concatenate(parts))]

    @property
    def sources(self) -> int:
        return sum(len(np.unique(np.concatenate(parts))) if parts else 0
                   for parts in (self._sources, self._sources6))


_PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6", 47: "gre", 50: "esp", None: "non-ip"}


def _hour_label(hour: int | None) -> str:
    if hour is None:
        return "hour=none"
    stamp = np.datetime64(hour * NS_PER_HOUR, "ns").astype("datetime64[h]")
    return f"hour={str(stamp).replace(' ', 'T')}"


class _HourWriters:
    """Lazily opened Parquet writers, one per hour, at most ``MAX_OPEN_PARTITIONS`` open."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.open: OrderedDict[str, pq.ParquetWriter] = OrderedDict()
        self.parts: dict[str, int] = {}

    def write(self, label: str, table: pa.Table) -> None:
        writer = self.open.get(label)
        if writer is None:
            part = self.parts.get(label, 0)
            self.parts[label] = part + 1
            folder = self.root / label
            folder.mkdir(parents=True, exist_ok=True)
            writer = pq.ParquetWriter(folder / f"part-{part:05d}.parquet", PACKET_SCHEMA,
                                      compression="zstd")
            self.open[label] = writer
            if len(self.open) > MAX_OPEN_PARTITIONS:
                self.open.popitem(last=False)[1].close()
        self.open.move_to_end(label)
        writer.write_table(table)

    def close(self) -> None:
        for writer in self.open.values():
            writer.close()
        self.open.clear()


def write_packets(batches: Iterable[pa.RecordBatch], output: str | Path, *,
                  partition: Partition = "none", overwrite: bool = False) -> Summary:
    """Write the batches atomically; returns totals for reporting."""
    summary = Summary()
    with atomic_path(output, overwrite) as tmp:
        if partition == "none":
            with pq.ParquetWriter(tmp, PACKET_SCHEMA, compression="zstd") as writer:
                for batch in batches:
                    writer.write_batch(batch)
                    summary.add(batch)
        else:
            tmp.mkdir()
            writers = _HourWriters(tmp)
            try:
                for batch in batches:
                    _write_by_hour(writers, batch)
                    summary.add(batch)
            finally:
                writers.close()
            if not any(tmp.iterdir()):
                pq.write_table(PACKET_SCHEMA.empty_table(), tmp / "part-empty.parquet")
    return summary


def _write_by_hour(writers: _HourWriters, batch: pa.RecordBatch) -> None:
    ts = batch.column("ts")
    hours = pc.divide(ts.cast(pa.int64()), NS_PER_HOUR)
    table = pa.Table.from_batches([batch])
    if hours.null_count == 0:
        values = hours.to_numpy()
        if values.size and values.min() == values.max():
            writers.write(_hour_label(int(values[0])), table)
            return
    for hour in pc.unique(hours).to_pylist():
        mask = pc.is_null(hours) if hour is None else pc.equal(hours, hour)
        writers.write(_hour_label(hour), table.filter(pc.fill_null(mask, False)))
