"""Stream packet tables (captures or Parquet) and reduce them period by period.

For each period (default one day) and source host this keeps, in compact sorted arrays, how many
TCP SYN packets carried each item value, how many packets the host sent, and how many of them
matched each tool fingerprint. Inputs are read batch by batch; a period is handed on as soon as
the stream has moved past it, so memory holds one or two periods, never the whole input.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from darkscope.errors import DarkscopeError, UsageError
from darkscope.packets import PACKET_SCHEMA, scan
from darkscope.patterns.catalogue import Catalogue, Columns
from darkscope.patterns.fingerprints import FINGERPRINT_COLUMNS, FINGERPRINTS
from darkscope.progress import Tracker

_BASE_COLUMNS = ("ts", "src", "proto", "tcp_flags")
_COMPACT_EVERY = 8


@dataclass
class Period:
    """Everything one period contributes: per (host, item kind, value) SYN counts and per-host
    packet and fingerprint-match counts, all sorted by host."""

    start_ns: int
    item_keys: np.ndarray       # uint64: src << 20 | attr << 16 | value, sorted, unique
    item_counts: np.ndarray     # uint64, SYN packets per key
    hosts: np.ndarray           # uint32, sorted, unique
    packets: np.ndarray         # uint64, all packets per host
    matches: np.ndarray         # uint64, hosts x fingerprints


@dataclass
class _Partial:
    start_ns: int
    items: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    hosts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)

    def compact(self) -> None:
        if len(self.items) > 1:
            self.items = [_reduce(*map(np.concatenate, zip(*self.items, strict=True)))]
        if len(self.hosts) > 1:
            src, packets, matches = (np.concatenate(part) for part in zip(*self.hosts,
                                                                          strict=True))
            self.hosts = [_reduce_hosts(src, packets, matches)]

    def finish(self, n_fingerprints: int) -> Period:
        self.compact()
        keys, counts = self.items[0] if self.items else (np.zeros(0, np.uint64),) * 2
        if self.hosts:
            hosts, packets, matches = self.hosts[0]
        else:
            hosts, packets = np.zeros(0, np.uint32), np.zeros(0, np.uint64)
            matches = np.zeros((0, n_fingerprints), np.uint64)
        return Period(self.start_ns, keys, counts, hosts, packets, matches)


def _reduce(keys: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum ``counts`` per distinct key; keys come back sorted."""
    if not len(keys):
        return keys, counts
    order = np.argsort(keys, kind="stable")
    keys, counts = keys[order], counts[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return keys[starts], np.add.reduceat(counts, starts)


def _reduce_hosts(src: np.ndarray, packets: np.ndarray,
                  matches: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.argsort(src, kind="stable")
    src, packets, matches = src[order], packets[order], matches[order]
    starts = np.flatnonzero(np.r_[True, src[1:] != src[:-1]])
    return (src[starts], np.add.reduceat(packets, starts),
            np.add.reduceat(matches, starts, axis=0))


def packet_batches(inputs: list[str | Path], columns: list[str]) -> Iterator[pa.RecordBatch]:
    """Record batches with ``columns`` from captures and Parquet packet tables, in input order."""
    return scan(inputs, columns=columns)


def _columns(batch: pa.RecordBatch, catalogue: Catalogue) -> Columns:
    arrays, valid = {}, {}
    for name in batch.schema.names:
        column = batch.column(name)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            encoded = pc.dictionary_encode(column)
            codes = catalogue.layouts.encode(encoded.dictionary.to_pylist())
            index = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False)
            arrays[name] = codes[index] if len(codes) else np.zeros(len(column), np.uint32)
        elif pa.types.is_timestamp(column.type):
            arrays[name] = pc.fill_null(column.cast(pa.int64()), 0).to_numpy()
        else:
            arrays[name] = pc.fill_null(column, 0).to_numpy(zero_copy_only=False)
        valid[name] = (np.ones(len(column), bool) if column.null_count == 0
                       else pc.is_valid(column).to_numpy(zero_copy_only=False))
    layout = batch.column("tcp_layout")
    no_options = pc.fill_null(pc.equal(layout, ""), False).to_numpy(zero_copy_only=False)
    mss_only = pc.fill_null(pc.equal(layout, "mss"), False).to_numpy(zero_copy_only=False)
    return Columns(arrays, valid, no_options, mss_only)


class PeriodScanner:
    """Reduce packet batches to :class:`Period` objects for consecutive periods."""

    def __init__(self, catalogue: Catalogue, period_ns: int) -> None:
        if period_ns <= 0:
            raise UsageError("the period must be positive")
        self.catalogue = catalogue
        self.period_ns = period_ns
        unknown = sorted(catalogue.columns() - set(PACKET_SCHEMA.names))
        if unknown:
            raise UsageError(f"item catalogue names unknown packet column(s) {', '.join(unknown)}")
        for spec in catalogue.specs:
            kind = PACKET_SCHEMA.field(spec.column).type
            if spec.transform == "layout":
                fits = pa.types.is_string(kind) or pa.types.is_large_string(kind)
            else:      # item values are packed into 16 bits of the aggregation key
                fits = pa.types.is_integer(kind) and kind.bit_width <= 16
            if not fits:
                need = "a string column" if spec.transform == "layout" else \
                    "an integer column of at most 16 bits"
                raise UsageError(f"item {spec.name!r}: transform {spec.transform!r} needs {need}; "
                                 f"{spec.column} is {kind}")
        self.columns = sorted(set(_BASE_COLUMNS) | set(FINGERPRINT_COLUMNS)
                              | catalogue.columns())

    def scan(self, inputs: list[str | Path],
             tracker: Tracker | None = None) -> Iterator[Period]:
        """Periods in time order, each yielded once the input has moved past it."""
        open_periods: dict[int, _Partial] = {}
        finished_before = None
        for batch in packet_batches(inputs, self.columns):
            if tracker is not None:
                tracker.advance(batch.num_rows)
            parts = self.reduce(batch)
            if not parts:
                continue
            low = min(part.start_ns for part in parts) // self.period_ns
            if finished_before is not None and low < finished_before:
                raise DarkscopeError(
                    "input is not in time order: packets of an earlier period appear after a "
                    "later one was complete; pass captures or tables in time order")
            for done in sorted(k for k in open_periods if k < low):
                yield open_periods.pop(done).finish(len(FINGERPRINTS))
                finished_before = done + 1
            for part in parts:
                partial = open_periods.setdefault(part.start_ns // self.period_ns,
                                                  _Partial(part.start_ns))
                partial.items.append((part.item_keys, part.item_counts))
                partial.hosts.append((part.hosts, part.packets, part.matches))
                if len(partial.items) >= _COMPACT_EVERY:
                    partial.compact()
        for done in sorted(open_periods):
            yield open_periods.pop(done).finish(len(FINGERPRINTS))

    def reduce(self, batch: pa.RecordBatch) -> list[Period]:
        """What one batch contributes to each period it touches, reduced on its own: periods
        of several batches add up key by key (how :meth:`scan` merges them, and how a cluster
        scans batches in parallel)."""
        cols = _columns(batch, self.catalogue)
        keep = cols.valid["src"] & cols.valid["ts"]
        if not keep.all():
            cols = _select(cols, keep)
        if not len(cols["ts"]):
            return []
        index = cols["ts"] // self.period_ns
        out = []
        for p in np.unique(index):
            sel = index == p
            partial = _Partial(int(p) * self.period_ns)
            self._add(partial, cols if sel.all() else _select(cols, sel))
            out.append(partial.finish(len(FINGERPRINTS)))
        return out

    def _add(self, partial: _Partial, cols: Columns) -> None:
        src = cols["src"].astype(np.uint32)
        hosts, inverse = np.unique(src, return_inverse=True)
        packets = np.bincount(inverse, minlength=len(hosts)).astype(np.uint64)
        matches = np.zeros((len(hosts), len(FINGERPRINTS)), np.uint64)
        for j, test in enumerate(FINGERPRINTS.values()):
            matches[:, j] = np.bincount(inverse, weights=test(cols), minlength=len(hosts))
        partial.hosts.append((hosts, packets, matches))

        syn = (cols["proto"] == 6) & cols.valid["tcp_flags"] & ((cols["tcp_flags"] & 0x12) == 2)
        keys = []
        src64 = src.astype(np.uint64) << np.uint64(20)
        for attr, (values, valid) in enumerate(self.catalogue.values(cols)):
            ok = syn & valid
            keys.append(src64[ok] | np.uint64(attr << 16) | values[ok].astype(np.uint64))
        all_keys = np.concatenate(keys) if keys else np.zeros(0, np.uint64)
        if len(all_keys):
            unique, counts = np.unique(all_keys, return_counts=True)
            partial.items.append((unique, counts.astype(np.uint64)))


def _select(cols: Columns, sel: np.ndarray) -> Columns:
    return Columns({k: v[sel] for k, v in cols.items()},
                   {k: v[sel] for k, v in cols.valid.items()}, cols.no_options[sel],
                   cols.mss_only[sel])
