"""The monitor's clock: packets in, intervals and detection spans closed as packet time passes.

Time is the packets' own (the watermark: the newest timestamp seen), so a replay of old
captures gives the same outputs as the traffic did live. Every ``interval_s`` (60 s, aligned
to the epoch like corsaro's intervals) the packets of the closed interval are written to the
packet table, and the hosts active since the last look are judged *provisionally* on what
their detection span holds so far: a DDoS is alerted within an interval or two of its first
packets. A detection span (the model's context span, or its window; 6 h by default) is
judged *finally* once it closes, on exactly the packets a batch ``backscatter detect`` would
use, so the verdict tables equal the batch ones. Memory: one open span of the detector's
columns (a /16 telescope: a few hundred thousand packets an hour).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from darkscope.backscatter.flow import DDOS, Decisions, decide, record_reviews, verdict_table
from darkscope.backscatter.inputs import detector_rows
from darkscope.backscatter.persist import SavedModel
from darkscope.backscatter.rules import RuleSet
from darkscope.backscatter.telescope import Telescope
from darkscope.backscatter.victims import victims as find_victims
from darkscope.monitor.attacks import AttackTracker
from darkscope.monitor.outputs import AlertLog, Layout, alert_records, iso
from darkscope.store import ReviewStore

NS = 1_000_000_000
# called with a judged span's packets, its final decisions and its start (ns)
SpanHook = Callable[[pa.Table, Decisions, int], None]
# called with a written packet-table part (relative to OUT) and the time it covers (ns)
PartHook = Callable[[Path, int, int], None]
HOUR_NS = 3600 * NS


@dataclass
class Counters:
    packets: int = 0
    late_packets: int = 0          # older than a span already judged: in the packet table only
    intervals: int = 0
    spans: int = 0
    host_windows: int = 0
    ddos_windows: int = 0
    queued: int = 0
    alerts: int = 0
    attacks: int = 0               # attacks started

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


@dataclass
class SpanState:
    """What the open detection span holds: packet-table parts of its closed intervals and
    the provisional alerts already raised (so each is raised once)."""

    start: int | None = None              # ns; None before the first packet
    parts: list[str] = field(default_factory=list)
    alerted: dict[str, str] = field(default_factory=dict)   # host-window key -> stage


class Engine:
    """Feed packet batches with :meth:`feed`; :meth:`advance` closes what packet time passed."""

    def __init__(self, layout: Layout, saved: SavedModel, model_version: str, rules: RuleSet,
                 telescope: Telescope, store: ReviewStore | None, alerts: AlertLog,
                 interval_s: int = 60, on_span_closed: SpanHook | None = None,
                 on_part_written: PartHook | None = None) -> None:
        span = saved.definition.chunk_s
        if span is None:
            raise ValueError("packet-count windows have no time span to monitor")
        if span % interval_s and interval_s % span:
            raise ValueError(f"--interval {interval_s} s does not divide the model's "
                             f"{span} s detection span")
        self.layout = layout
        self.saved = saved
        self.model_version = model_version
        self.rules = rules
        self.telescope = telescope
        self.store = store
        self.alerts = alerts
        self.on_span_closed = on_span_closed
        self.on_part_written = on_part_written
        self._part_rows: list[pa.Table] = []     # closed intervals not yet written
        self._part_start: int | None = None
        window_s = saved.definition.window_s or span
        self.attacks = AttackTracker(window_s * NS)
        self.interval_ns = min(interval_s, span) * NS
        self.span_ns = span * NS
        self.watermark: int | None = None
        self.interval_start: int | None = None
        self.span = SpanState()
        self.counters = Counters()
        self._open: list[pa.Table] = []          # full packet rows not yet written
        self._span_tables: list[pa.Table] = []   # detector columns of the span's parts
        self._fresh_hosts: list[pa.Table] = []   # detector rows since the last provisional look

    # -- state for checkpoints -----------------------------------------------------------
    def open_rows(self) -> pa.Table | None:
        return pa.concat_tables(self._open) if self._open else None

    def restore(self, watermark: int | None, interval_start: int | None, span: SpanState,
                counters: Counters, open_rows: pa.Table | None,
                attacks: dict[str, dict] | None = None) -> None:
        self.attacks.state = attacks or {}
        self.watermark, self.interval_start = watermark, interval_start
        self.span, self.counters = span, counters
        self._open = [open_rows] if open_rows is not None and open_rows.num_rows else []
        self._span_tables = []
        for part in span.parts:
            rows = detector_rows(pq.read_table(self.layout.root / part))
            self._span_tables.append(rows.filter(pc.greater_equal(
                rows["ts"].cast(pa.int64()), span.start)))  # late rows stay out, as before

    # -- the flow --------------------------------------------------------------------------
    def feed(self, batches: list[pa.RecordBatch]) -> None:
        table = pa.Table.from_batches(batches)
        table = table.filter(pc.is_valid(table["ts"]))
        if not table.num_rows:
            return
        self.counters.packets += table.num_rows
        newest = int(pc.max(table["ts"].cast(pa.int64())).as_py())
        self.watermark = newest if self.watermark is None else max(self.watermark, newest)
        if self.interval_start is None:
            oldest = int(pc.min(table["ts"].cast(pa.int64())).as_py())
            self.interval_start = oldest // self.interval_ns * self.interval_ns
            self.span.start = oldest // self.span_ns * self.span_ns
        self._open.append(table)

    def advance(self, finish: bool = False) -> None:
        """Close every interval (and span) the watermark has passed; ``finish``: the input
        is complete, so close the open ones too (a batch run's last, partial span)."""
        if self.watermark is None or self.interval_start is None:
            return
        limit = self.watermark + 1 if finish else self.watermark // self.interval_ns * \
            self.interval_ns
        table = self.open_rows()
        if table is not None:
            # One sort and one cut for the whole backlog, then a slice per interval: the
            # open rows are never filtered once per interval.
            ts = table["ts"].cast(pa.int64()).to_numpy()
            if ts.size > 1 and bool((ts[1:] < ts[:-1]).any()):
                order = np.argsort(ts, kind="stable")
                table, ts = table.take(order), ts[order]
            cut = int(np.searchsorted(ts, limit, "left"))
            closing, rest = table.slice(0, cut), table.slice(cut)
            self._open = [rest] if rest.num_rows else []
            # late rows (older than the open interval) go with the open interval
            starts = np.maximum(ts[:cut] // self.interval_ns * self.interval_ns,
                                self.interval_start)
            edges = [0, *(np.flatnonzero(starts[1:] != starts[:-1]) + 1).tolist(), cut]
            for lo, hi in itertools.pairwise(edges if cut else []):
                start = int(starts[lo])
                if self._part_start is not None and (
                        start // HOUR_NS != self._part_start // HOUR_NS
                        or start >= self.span.start + self.span_ns):
                    self._write_part()  # a part holds one hour of one span at most
                self._move_to(start)
                self._close_interval(closing.slice(lo, hi - lo), start)
                if self.interval_start >= self.span.start + self.span_ns:
                    self._write_part()
                    self._close_span()
            self._write_part()
        span_over = self.span.start is not None and self.span.start + self.span_ns <= limit
        if self._span_tables and (finish or span_over):
            self._close_span()  # the span ended while no packet was pending (a quiet link)
        if not finish:
            self._provisional()
        self._emit(self.attacks.expire(None if finish else self.watermark))

    def clock(self, now_ns: int) -> None:
        """Live capture: real time moves the watermark even when no packet arrives, so
        intervals and spans close on time on a quiet link."""
        if self.watermark is not None:
            self.watermark = max(self.watermark, now_ns)

    def _move_to(self, ts: int) -> None:
        """Jump the open interval (and span) forward to the ones holding ``ts``."""
        target = ts // self.interval_ns * self.interval_ns
        while self.span.start is not None and target >= self.span.start + self.span_ns:
            if self._span_tables:
                self._close_span()
            else:
                self.span = SpanState(target // self.span_ns * self.span_ns)
        self.interval_start = max(self.interval_start or target, target)

    def _close_interval(self, closed: pa.Table, start: int) -> None:
        """Add one interval's packets to the open span and to the part being gathered."""
        assert self.span.start is not None
        self.interval_start = start + self.interval_ns
        self.counters.intervals += 1
        if self._part_start is None:
            self._part_start = start
        self._part_rows.append(closed)
        detector = detector_rows(closed)
        late = pc.less(detector["ts"].cast(pa.int64()), self.span.start)
        late_rows = int(pc.sum(late).as_py() or 0)
        if late_rows:
            self.counters.late_packets += late_rows
            detector = detector.filter(pc.invert(late))
        self._span_tables.append(detector)
        self._fresh_hosts.append(detector.select(["src", "src6"]))

    def _write_part(self) -> None:
        """Write the gathered intervals as one packet-table part: one per interval when
        keeping up with live traffic, up to an hour's worth when catching up on a backlog."""
        if self._part_start is None:
            return
        start, end = self._part_start, self.interval_start
        assert end is not None
        part = self.layout.packets_part(start)
        self.layout.write(pa.concat_tables(self._part_rows), part)
        self.span.parts.append(str(part))
        self._part_rows, self._part_start = [], None
        if self.on_part_written is not None:
            self.on_part_written(part, start, end)

    def _decide(self, table: pa.Table):
        labels = self.store.labels() if self.store is not None else None
        return decide(table, self.saved, self.rules, self.telescope, labels)

    def _provisional(self) -> None:
        """Judge the hosts active since the last look on their span so far; alert new DDoS."""
        if not self._fresh_hosts or not self._span_tables:
            return
        fresh = pa.concat_tables(self._fresh_hosts)
        self._fresh_hosts = []
        span = pa.concat_tables(self._span_tables)
        keep = pc.or_(pc.is_in(span["src"], value_set=pc.unique(fresh["src"].drop_null())),
                      pc.is_in(span["src6"], value_set=pc.unique(fresh["src6"].drop_null())))
        subset = span.filter(pc.fill_null(keep, False))
        if not subset.num_rows:
            return
        decisions = self._decide(subset)
        table = self._with_version(verdict_table(decisions))
        ddos = table.filter(pc.equal(table["verdict"], "ddos"))
        records = [r for r in alert_records(ddos, "provisional")
                   if r["key"] not in self.span.alerted]
        for record in records:
            self.span.alerted[record["key"]] = "provisional"
        self._emit(records)

    def _close_span(self) -> None:
        assert self.span.start is not None
        table = pa.concat_tables(self._span_tables)
        decisions = self._decide(table)
        verdicts = self._with_version(verdict_table(decisions))
        for hour_start, rows in _by_hour(verdicts):
            self.layout.write(rows, self.layout.verdicts_part(hour_start, self.span.start))
        if self.store is not None:
            self.counters.queued += record_reviews(decisions, self.store,
                                                  self.model_version)
        is_ddos = decisions.verdict[decisions.windows.row_of_packet] == DDOS
        if is_ddos.any():
            attacks = find_victims(table.filter(pa.array(is_ddos)), verdicts, self.telescope)
            if attacks.num_rows:
                self.layout.write(attacks, self.layout.victims_part(self.span.start))
        ddos = verdicts.filter(pc.equal(verdicts["verdict"], "ddos"))
        records = []
        final_keys = set()
        for record in alert_records(ddos, "final"):
            final_keys.add(record["key"])
            if self.span.alerted.get(record["key"]) is None:
                records.append(record)
        retracted = [key for key, stage in self.span.alerted.items() if key not in final_keys]
        records += [{"key": key, "stage": "retracted", "kind": "ddos",
                     "reason": "the span's final verdict is not ddos",
                     "model_version": self.model_version} for key in retracted]
        self._emit(records)
        self.counters.spans += 1
        self.counters.host_windows += verdicts.num_rows
        self.counters.ddos_windows += ddos.num_rows
        if self.on_span_closed is not None:
            self.on_span_closed(table, decisions, self.span.start)
        self.span = SpanState(self.span.start + self.span_ns)
        self._span_tables = []
        self._fresh_hosts = []

    def _emit(self, records: list[dict]) -> None:
        records = records + self.attacks.observe(records)
        if records:
            at = iso(time.time_ns())
            seen = None if self.watermark is None else iso(self.watermark)
            self.alerts.write([{**r, "at": at, "packet_time": seen} for r in records])
            self.counters.alerts += len(records)
            self.counters.attacks += sum(r["kind"] == "attack" and r["stage"] == "start"
                                         for r in records)

    def _with_version(self, verdicts: pa.Table) -> pa.Table:
        return verdicts.append_column(
            "model_version", pa.array([self.model_version] * verdicts.num_rows, pa.string()))


def _by_hour(verdicts: pa.Table):
    starts = verdicts["window_start"].cast(pa.int64()).to_numpy()
    hours = starts // (3600 * NS) * (3600 * NS)
    for hour in np.unique(hours):
        yield int(hour), verdicts.filter(pa.array(hours == hour))
