"""From packet inputs to the rules table and the host attribution table, period by period."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from darkscope.errors import DarkscopeError, UsageError
from darkscope.patterns.catalogue import Catalogue, load_catalogue
from darkscope.patterns.fingerprints import FAMILIES, attribute
from darkscope.patterns.mining import (
    RuleSet,
    group_variants,
    min_hosts_for,
    mine_rules,
    published_forms,
    rule_text,
)
from darkscope.patterns.scan import Period, PeriodScanner
from darkscope.patterns.transactions import ItemPolicy, Transactions, build
from darkscope.progress import Tracker

# Lift 1 means the consequent is as common among the rule's hosts as among all hosts: on
# telescope traffic, {dport=X} -> {tos=0} holds for nearly every X only because almost every
# host sends ToS 0. A rule must beat its consequent's base rate by 5% (a consequent carried by
# more than ~95% of a period's hosts cannot reach it).
DEFAULT_MIN_LIFT = 1.05
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
NS = 1_000_000_000

RULES_SCHEMA = pa.schema([
    ("period_start", pa.timestamp("ns", tz="UTC")),
    ("antecedent", pa.list_(pa.string())),
    ("consequent", pa.list_(pa.string())),
    ("support_hosts", pa.int64()),
    ("confidence", pa.float64()),
    ("lift", pa.float64()),
    ("period_hosts", pa.int64()),
    ("pattern", pa.string()),
    ("core", pa.bool_()),
    ("variants", pa.int64()),
    ("published_form", pa.string()),
    ("mirai_share", pa.float64()),
    ("family", pa.string()),
    ("family_share", pa.float64()),
    ("support_src", pa.list_(pa.uint32())),
])
# the hosts kept with each rule (its support set, busiest first): enough for an analyst to
# follow a pattern to its hosts, bounded so a {dport=23} rule of 200,000 hosts stays small
SUPPORT_SAMPLE = 1000
HOSTS_SCHEMA = pa.schema([
    ("src", pa.uint32()),
    ("period_start", pa.timestamp("ns", tz="UTC")),
    ("family", pa.string()),
    ("match_share", pa.float64()),
    ("packets", pa.int64()),
])


def parse_period(text: str) -> int:
    """``1d``, ``12h``, ``30m``, ``1w`` -> nanoseconds."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text)
    if not match or int(match.group(1)) == 0:
        raise UsageError(f"period {text!r}: expected a positive number and a unit s/m/h/d/w, "
                         "e.g. 1d or 6h")
    return int(match.group(1)) * _UNITS[match.group(2)] * NS


@dataclass
class MineSettings:
    """Every knob of ``darkscope rules mine``."""

    period_ns: int = 86400 * NS
    min_hosts: int | None = 1000
    min_support: float | None = None
    min_confidence: float = 0.9
    min_lift: float = DEFAULT_MIN_LIFT
    max_len: int = 4
    policy: ItemPolicy = field(default_factory=ItemPolicy)
    attribution_threshold: float = 0.9
    all_rules: bool = False
    counter: str = "auto"         # itemset counter: auto, apriori or fpgrowth


@dataclass
class MineSummary:
    periods: int = 0
    hosts: int = 0
    rules: int = 0
    patterns: int = 0
    largest_period_hosts: int = 0
    skipped_periods: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _host_families(period: Period, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    return attribute(period.packets.astype(np.float64), period.matches.astype(np.float64),
                     threshold)


def iso_time(ns: int) -> str:
    """A period start as ISO text (UTC, seconds)."""
    return np.datetime64(ns, "ns").astype("datetime64[s]").astype(str) + "Z"


def _rules_rows(period: Period, tx: Transactions, rules: RuleSet, core: np.ndarray,
                families: np.ndarray, all_rules: bool) -> pa.Table:
    group_size = np.bincount(core, minlength=len(rules))
    is_core = core == np.arange(len(rules))
    rows = np.arange(len(rules)) if all_rules else np.flatnonzero(is_core)
    in_period = np.searchsorted(period.hosts, tx.hosts)
    tx_family = families[in_period]
    # busiest first (packets in the period), then by address: a stable, useful sample
    busiest = np.lexsort((tx.hosts, -period.packets[in_period].astype(np.int64)))
    support_src: list[np.ndarray] = []
    antecedent = [[tx.items[i] for i in rules.antecedents[r]] for r in rows]
    consequent = [[tx.items[int(rules.consequents[r])]] for r in rows]
    mirai_code = FAMILIES.index("mirai")
    mirai_share = np.zeros(len(rows))
    top_family: list[str] = []
    top_share = np.zeros(len(rows))
    for k, r in enumerate(rows):
        carriers = tx.carriers([*rules.antecedents[r], int(rules.consequents[r])])
        targets = tx_family[carriers]
        support_src.append(tx.hosts[busiest[carriers[busiest]][:SUPPORT_SAMPLE]])
        counts = np.bincount(targets, minlength=len(FAMILIES))
        mirai_share[k] = counts[mirai_code] / max(len(targets), 1)
        best = int(np.argmax(counts))
        top_family.append(FAMILIES[best])
        top_share[k] = counts[best] / max(len(targets), 1)
    patterns = [rule_text([tx.items[i] for i in rules.antecedents[c]],
                          [tx.items[int(rules.consequents[c])]]) for c in core[rows]]
    forms = published_forms(tx.items, rules, core)
    n = len(rows)
    return pa.table({
        "period_start": pa.array(np.full(n, period.start_ns, np.int64)).cast(
            RULES_SCHEMA.field("period_start").type),
        "antecedent": pa.array(antecedent, pa.list_(pa.string())),
        "consequent": pa.array(consequent, pa.list_(pa.string())),
        "support_hosts": rules.support[rows],
        "confidence": rules.confidence[rows],
        "lift": rules.lift[rows],
        "period_hosts": np.full(n, tx.n_hosts, np.int64),
        "pattern": pa.array(patterns, pa.string()),
        "core": is_core[rows],
        "variants": group_size[core[rows]].astype(np.int64),
        "published_form": pa.array([forms[c] for c in core[rows]], pa.string()),
        "mirai_share": mirai_share,
        "family": pa.array(top_family, pa.string()),
        "family_share": top_share,
        "support_src": pa.array([a.astype(np.uint32) for a in support_src],
                                pa.list_(pa.uint32())),
    }, schema=RULES_SCHEMA)


def mine_periods(inputs: list[str | Path], settings: MineSettings,
                 catalogue: Catalogue | None = None, tracker: Tracker | None = None,
                 summary: MineSummary | None = None) -> Iterator[pa.Table]:
    """Rules tables, one per period with hosts, in time order (bounded memory)."""
    catalogue = catalogue or load_catalogue()
    summary = summary if summary is not None else MineSummary()
    started = time.perf_counter()
    for period in PeriodScanner(catalogue, settings.period_ns).scan(inputs, tracker):
        table = mine_period(period, settings, catalogue, summary)
        if table is not None:
            yield table
    summary.seconds = time.perf_counter() - started
    check_summary(summary, settings)


def mine_period(period: Period, settings: MineSettings, catalogue: Catalogue,
                summary: MineSummary) -> pa.Table | None:
    """The rules table of one period (None when it has fewer hosts than the minimum
    support), its counts added to ``summary``."""
    tx = build(period, catalogue, settings.policy)
    summary.periods += 1
    summary.hosts += tx.n_hosts
    summary.largest_period_hosts = max(summary.largest_period_hosts, tx.n_hosts)
    threshold = min_hosts_for(tx.n_hosts, settings.min_hosts, settings.min_support)
    if tx.n_hosts < threshold:
        summary.skipped_periods.append(iso_time(period.start_ns))
        return None
    rules = mine_rules(tx, threshold, settings.min_confidence, settings.max_len,
                       settings.counter)
    if settings.min_lift > 0:
        rules = rules.take(np.flatnonzero(rules.lift >= settings.min_lift))
    core = group_variants(rules)
    families, _ = _host_families(period, settings.attribution_threshold)
    summary.rules += len(rules)
    summary.patterns += int((core == np.arange(len(rules))).sum())
    return _rules_rows(period, tx, rules, core, families, settings.all_rules)


def check_summary(summary: MineSummary, settings: MineSettings) -> None:
    """Errors for inputs that gave nothing to mine, whatever engine scanned them."""
    if summary.periods == 0:
        raise DarkscopeError("the input has no IPv4 packets with timestamps: no period to mine")
    if summary.hosts == 0:
        raise DarkscopeError("the input has no TCP SYN packets: no host transactions to mine")
    if len(summary.skipped_periods) == summary.periods:
        raise DarkscopeError(
            f"minimum support {settings.min_hosts} hosts is above the number of hosts in every "
            f"period (largest: {summary.largest_period_hosts:,}); lower --min-hosts")


def mine(inputs: list[str | Path], settings: MineSettings | None = None,
         catalogue: Catalogue | None = None, tracker: Tracker | None = None,
         summary: MineSummary | None = None) -> pa.Table:
    """The rules table of all periods (see :data:`RULES_SCHEMA`)."""
    tables = list(mine_periods(inputs, settings or MineSettings(), catalogue, tracker, summary))
    return pa.concat_tables(tables) if tables else RULES_SCHEMA.empty_table()


def attribute_periods(inputs: list[str | Path], period_ns: int = 86400 * NS,
                      threshold: float = 0.9,
                      tracker: Tracker | None = None) -> Iterator[pa.Table]:
    """One hosts table per period: family and match share of every source host."""
    if not 0 <= threshold < 1:
        raise UsageError(f"attribution threshold must be within 0..1 (exclusive), got {threshold}")
    catalogue = load_catalogue(items=["win"])      # items are not needed; keep the scan light
    seen = False
    for period in PeriodScanner(catalogue, period_ns).scan(inputs, tracker):
        seen = True
        family, share = _host_families(period, threshold)
        n = len(period.hosts)
        yield pa.table({
            "src": period.hosts,
            "period_start": pa.array(np.full(n, period.start_ns, np.int64)).cast(
                HOSTS_SCHEMA.field("period_start").type),
            "family": pa.array(np.array(FAMILIES, dtype=object)[family], pa.string()),
            "match_share": share,
            "packets": period.packets.astype(np.int64),
        }, schema=HOSTS_SCHEMA)
    if not seen:
        raise DarkscopeError("the input has no IPv4 packets with timestamps: no host to attribute")
