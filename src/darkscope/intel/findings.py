"""What darkscope found, per address, ready to share: scanning sources and DDoS victims.

- **Sources** are the hosts whose telescope traffic was judged *not* backscatter
  (``not_ddos`` verdicts): unsolicited traffic to unused addresses is scanning (or, rarely,
  misconfiguration). Windows left to experts (``needs_review``) are not exported: nobody has
  decided them. Each source carries its first/last window, packets, the verdicts' provenance
  (``rule:<id>``, ``model``, ``expert``), its best confidence, and the tool families that
  ``hosts attribute`` fingerprinted (Mirai, ZMap, Masscan).
- A source is **confirmed** when a labelling rule or an expert decided it, or a tool
  fingerprint matched it: only confirmed sources become STIX indicators. The model's own
  verdicts are shared as sightings, never as indicators.
- **Victims** come from ``backscatter victims`` tables: hosts whose replies to spoofed
  floods reached the telescope. They are victims, never blocklisted.
- **Rules** come from ``rules mine`` tables (and a monitor's rules): each pattern of items
  (TCP window, ToS, destination port) that many hosts carried together, once over every
  period it was mined in, with its best period's support and the tool family most of its
  hosts were fingerprinted as. Rules with a ``*sweep*`` item are left out: a sweep is no
  value that a packet can be matched against.
- **Topics** of dark web markets (``topics fit``'s ``topics.json``) are read only when asked
  (``dark_web``): what a crawl found stays in-house by default.
- **Expert labels** come from the review store, and only when asked (``--expert-notes``): a
  note an analyst wrote is internal until someone decides to share it. Who labelled is never
  exported.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from darkscope.catalog import Catalog, classify
from darkscope.errors import UsageError

EXPORTED = ("verdicts", "victims", "hosts", "rules")
DARK_WEB = ("topic_summaries",)   # read only when asked
SWEEP = "*sweep*"


@dataclass(frozen=True)
class Source:
    ip: str
    first_seen: datetime
    last_seen: datetime
    packets: int
    windows: int
    confidence: float
    decided_by: tuple[str, ...]
    families: tuple[str, ...] = ()
    day: date | None = None     # set when findings are kept per UTC day (MISP events)

    @property
    def confirmed(self) -> bool:
        """Decided by a labelling rule or an expert, or fingerprinted as a known tool."""
        return bool(self.families) or any(d == "expert" or d.startswith("rule:")
                                          for d in self.decided_by)

    @property
    def tags(self) -> tuple[str, ...]:
        return (*(f"tool:{f}" for f in self.families),
                *(f"decided-by:{d}" for d in self.decided_by))


@dataclass(frozen=True)
class Victim:
    ip: str
    start: datetime
    end: datetime
    packets: int
    ports: str
    estimated_attack_pps: float


@dataclass(frozen=True)
class Rule:
    """A scanner fingerprint: items hosts carried together (``dport=23``, ``win=1320``), as
    one pattern over every period it was mined in; the numbers are its best period's."""

    items: tuple[str, ...]        # the rule's antecedent and consequent, in item order
    text: str                     # the rule as mined: ``{dport=2323} -> {dport=23}``
    first_period: datetime
    last_period: datetime         # start of the last period it was mined in
    periods: int
    support_hosts: int
    period_hosts: int
    confidence: float
    lift: float
    family: str | None            # the tool family most of its hosts were fingerprinted as
    family_share: float
    day: date | None = None       # set when findings are kept per UTC day (MISP events)


@dataclass(frozen=True)
class ExpertLabel:
    """An expert's standing label of a host (``window_start`` None) or of one window."""

    id: int
    ip: str
    window_start: datetime | None
    label: str            # ddos, scan or other
    note: str | None
    at: datetime


@dataclass
class Findings:
    sources: list[Source] = field(default_factory=list)
    victims: list[Victim] = field(default_factory=list)
    labels: list[ExpertLabel] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    topics: list[dict] = field(default_factory=list)   # topics.json documents, when asked
    skipped: list[str] = field(default_factory=list)


def expert_labels(store: str | Path) -> list[ExpertLabel]:
    """The standing labels of the review store at ``store``, oldest first."""
    from darkscope.store import ReviewStore

    path = Path(store)
    if not path.is_file():
        raise UsageError(f"--store {path}: no such review store")
    with ReviewStore(path) as opened:
        standing = opened.labels()
    return sorted((ExpertLabel(
        id=label.id, ip=str(ipaddress.IPv4Address(label.src)),
        window_start=None if label.window_start is None else _utc(label.window_start),
        label=str(label.label), note=label.note or None, at=_utc(label.at))
        for label in standing.values()), key=lambda label: label.id)


def find_inputs(inputs: Iterable[str | Path], kinds: tuple[str, ...] = EXPORTED
                ) -> tuple[dict[str, list[Path]], list[str]]:
    """The tables of ``kinds`` among ``inputs`` (files, or directories searched by schema
    like ``darkscope serve --data``), and what was not one of them."""
    files: dict[str, list[Path]] = {}
    skipped: list[str] = []
    for given in inputs:
        path = Path(given)
        if path.is_dir():
            catalog = Catalog(path)
            catalog.refresh(force=True)
            found = {kind: paths for kind, paths in catalog.files.items() if kind in kinds}
            skipped += [str(path / s) for s in catalog.skipped]
            skipped += [str(p) for kind, paths in catalog.files.items()
                        if kind not in kinds for p in paths]  # crawls, topics, PP-ELM
        elif path.is_file():
            kind = classify(path)
            found = {kind: [path]} if kind in kinds else {}
            if not found:
                skipped.append(str(path))
        else:
            raise UsageError(f"{path}: no such file or directory")
        for kind, paths in found.items():
            files.setdefault(kind, []).extend(paths)
    if not files:
        raise UsageError("no verdicts, victims, hosts or rules tables among the inputs "
                         "(darkscope backscatter detect / victims, hosts attribute, rules "
                         "mine, or a monitor's output directory)")
    return files, skipped


def load(inputs: Iterable[str | Path], per_day: bool = False,
         dark_web: bool = False) -> Findings:
    """The findings of ``inputs``; ``per_day``: one source (and rule) per UTC day instead of
    one over all time (the days a MISP feed has events for); ``dark_web``: also the topics of
    dark web markets."""
    files, skipped = find_inputs(inputs, EXPORTED + (DARK_WEB if dark_web else ()))
    families = _families(files.get("hosts", []))
    return Findings(sources=_sources(files.get("verdicts", []), families, per_day),
                    victims=_victims(files.get("victims", [])),
                    rules=_rules(files.get("rules", []), per_day),
                    topics=[json.loads(p.read_bytes()) for p in files.get("topic_summaries", [])],
                    skipped=skipped)


def _table(paths: list[Path], columns: list[str]) -> pa.Table:
    """The columns of several files as one table (a column a file lacks is null there)."""
    tables = []
    for path in paths:
        fmt = "json" if path.suffix == ".jsonl" else "parquet"
        dataset = ds.dataset(path, format=fmt)
        have = [c for c in columns if c in dataset.schema.names]
        table = dataset.to_table(columns=have)
        for name in columns:
            if name not in have:
                table = table.append_column(name, pa.nulls(table.num_rows))
        tables.append(table.select(columns))
    return pa.concat_tables(tables, promote_options="permissive")


def _families(paths: list[Path]) -> dict[int, tuple[str, ...]]:
    if not paths:
        return {}
    table = _table(paths, ["src", "family"])
    table = table.filter(pc.and_(pc.is_valid(table["src"]),
                                 pc.not_equal(table["family"], "unknown")))
    grouped = table.group_by("src").aggregate([("family", "distinct")])
    return {int(src): tuple(sorted(fams)) for src, fams in
            zip(grouped["src"].to_pylist(), grouped["family_distinct"].to_pylist(),
                strict=True)}


def _sources(paths: list[Path], families: dict[int, tuple[str, ...]],
             per_day: bool = False) -> list[Source]:
    if not paths:
        return []
    table = _table(paths, ["src", "src6", "window_start", "window_end", "packets", "verdict",
                           "decided_by", "confidence"])
    table = table.filter(pc.equal(table["verdict"], "not_ddos"))
    ip = pc.if_else(pc.is_valid(table["src"]), pc.cast(table["src"], pa.int64()).cast(
        pa.string()), pc.cast(table["src6"], pa.string()))
    table = table.append_column("ip", ip).filter(pc.is_valid(ip))
    keys = ["ip"]
    if per_day:
        table = table.append_column("day", pc.floor_temporal(
            pc.cast(table["window_start"], pa.timestamp("ns", tz="UTC")), unit="day"))
        keys.append("day")
    grouped = table.group_by(keys).aggregate([
        ("window_start", "min"), ("window_end", "max"), ("packets", "sum"),
        ("packets", "count"), ("confidence", "max"), ("decided_by", "distinct")])
    out = []
    columns = {name: _pylist(grouped[name]) for name in grouped.column_names}
    days = columns["day"] if per_day else [None] * grouped.num_rows
    for text, first, last, packets, windows, confidence, decided, day in zip(
            columns["ip"], columns["window_start_min"], columns["window_end_max"],
            columns["packets_sum"], columns["packets_count"], columns["confidence_max"],
            columns["decided_by_distinct"], days, strict=True):
        v4 = int(text) if text.isdigit() else None
        out.append(Source(
            ip=socket.inet_ntoa(v4.to_bytes(4, "big")) if v4 is not None
            else str(ipaddress.IPv6Address(text)),
            first_seen=_utc(first), last_seen=_utc(last), packets=int(packets or 0),
            windows=int(windows), confidence=float(confidence or 0.0),
            decided_by=tuple(sorted(d for d in decided if d)),
            families=families.get(v4, ()) if v4 is not None else (),
            day=_utc(day).date() if per_day else None))
    return sorted(out, key=lambda s: (s.day or date.min, -s.packets, s.ip))


def _item_order(item: str) -> tuple[str, int, int | str]:
    kind, _, value = item.partition("=")
    return (kind, 0, int(value)) if value.isdigit() else (kind, 1, value)


def _rules(paths: list[Path], per_day: bool = False) -> list[Rule]:
    """One rule per pattern (and UTC day), its numbers from the period with most hosts."""
    if not paths:
        return []
    table = _table(paths, ["period_start", "antecedent", "consequent", "support_hosts",
                           "period_hosts", "confidence", "lift", "pattern", "core", "family",
                           "family_share"])
    groups: dict[tuple, list[dict]] = {}
    for row in table.to_pylist():
        items = [*(row["antecedent"] or ()), *(row["consequent"] or ())]
        if row["core"] is False or not items or any(i.endswith(SWEEP) for i in items):
            continue   # a variant of a core rule, or a sweep no packet can be matched with
        row["period_start"] = _utc(row["period_start"])
        key = tuple(sorted(items, key=_item_order))
        groups.setdefault((key, row["period_start"].date() if per_day else None),
                          []).append(row)
    out = []
    for (items, day), rows in groups.items():
        best = max(rows, key=lambda r: (r["support_hosts"], r["confidence"] or 0.0))
        family = best["family"] if best["family"] not in (None, "unknown") else None
        starts = [r["period_start"] for r in rows]
        out.append(Rule(
            items=items, text=str(best["pattern"]), first_period=min(starts),
            last_period=max(starts), periods=len(set(starts)),
            support_hosts=int(best["support_hosts"]),
            period_hosts=int(best["period_hosts"] or 0),
            confidence=float(best["confidence"] or 0.0), lift=float(best["lift"] or 0.0),
            family=family, family_share=float(best["family_share"] or 0.0), day=day))
    return sorted(out, key=lambda r: (r.day or date.min, -r.support_hosts, r.items))


def _victims(paths: list[Path]) -> list[Victim]:
    if not paths:
        return []
    table = _table(paths, ["victim", "start", "end", "packets", "ports",
                           "estimated_attack_pps"])
    return [Victim(str(ipaddress.IPv4Address(int(r["victim"]))), _utc(r["start"]),
                   _utc(r["end"]), int(r["packets"]), str(r["ports"] or ""),
                   float(r["estimated_attack_pps"] or 0.0))
            for r in table.to_pylist() if r["victim"] is not None]


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _pylist(column: pa.ChunkedArray) -> list:
    """A column as Python values; timestamps as UTC datetimes by integer arithmetic (pyarrow's
    own conversion takes microseconds per value, seconds for a /16's day of sources)."""
    if not pa.types.is_timestamp(column.type):
        return column.to_pylist()
    micros = pc.cast(pc.cast(column, pa.timestamp("us", tz="UTC"), safe=False), pa.int64())
    return [None if us is None else EPOCH + timedelta(microseconds=us)
            for us in micros.to_pylist()]


def _utc(value: datetime | str | int) -> datetime:
    """Times from Parquet (aware datetimes) or JSON Lines (ISO text) alike, in UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, int):
        value = datetime.fromtimestamp(value / 1e9, UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
