"""Rules through time: when each pattern appears, peaks and fades, and charts of it.

The timeline reads rules tables (one or many periods) and follows each rule, identified by its
text ``{a, b} -> {c}``, across periods: first and last period seen, peak host count and when,
daily host counts, and the periods where it appears or vanishes (the events of the timeline).
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from darkscope.errors import InputFormatError, UsageError
from darkscope.io import format_from_path
from darkscope.patterns.mining import rule_text

TIMELINE_SCHEMA = pa.schema([
    ("rule", pa.string()),
    ("family", pa.string()),
    ("first_seen", pa.timestamp("ns", tz="UTC")),
    ("last_seen", pa.timestamp("ns", tz="UTC")),
    ("periods_seen", pa.int64()),
    ("peak_hosts", pa.int64()),
    ("peak_period", pa.timestamp("ns", tz="UTC")),
    ("mirai_share_at_peak", pa.float64()),
    ("daily_hosts", pa.list_(pa.int64())),
    ("appears", pa.list_(pa.timestamp("ns", tz="UTC"))),
    ("vanishes", pa.list_(pa.timestamp("ns", tz="UTC"))),
])
_NEEDED = ("period_start", "antecedent", "consequent", "support_hosts")


@dataclass(frozen=True)
class Marker:
    """A labelled date drawn on the charts (e.g. "Mirai source code published")."""

    ns: int
    label: str


@dataclass
class Timeline:
    periods: np.ndarray          # int64 ns, every period present in the input, sorted
    table: pa.Table              # TIMELINE_SCHEMA, one row per rule
    counts: np.ndarray           # rules x periods host counts (0 = not found)


def read_rules(paths: list[str | Path]) -> pa.Table:
    """Rules tables in every format ``rules mine`` writes (Parquet, CSV, JSON Lines)."""
    tables = [check_rules(_read_one(Path(path)), str(path)) for path in paths]
    if not tables:
        raise UsageError("no rules table given")
    return pa.concat_tables(tables, promote_options="permissive")


def check_rules(table: pa.Table, where: str) -> pa.Table:
    """``table`` if it has the columns a timeline follows, else an error naming ``where``."""
    missing = [c for c in _NEEDED if c not in table.column_names]
    if missing:
        raise InputFormatError(where, "not a darkscope rules table: no column "
                                      + ", ".join(missing))
    return table


def _read_one(path: Path) -> pa.Table:
    if not path.exists():
        raise UsageError(f"rules table {path}: no such file")
    if path.is_dir():
        raise UsageError(f"rules table {path} is a directory; give the file `rules mine -o` "
                         "wrote")
    fmt = format_from_path(path)
    try:
        if fmt == "parquet":
            return pq.read_table(path)
        table = pacsv.read_csv(path) if fmt == "csv" else pajson.read_json(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputFormatError(path, f"not a readable {fmt} rules table ({exc})") from None
    # CSV keeps item lists as JSON arrays and both text formats keep times as text
    for name in ("antecedent", "consequent"):
        if name in table.column_names and not pa.types.is_list(table.schema.field(name).type):
            try:
                items = [None if v is None else json.loads(v)
                         for v in table[name].to_pylist()]
            except (TypeError, ValueError) as exc:
                raise InputFormatError(path, f"column {name}: not JSON arrays of items "
                                             f"({exc})") from None
            table = table.set_column(table.schema.get_field_index(name), name,
                                     pa.array(items, pa.list_(pa.string())))
    if "period_start" in table.column_names:
        column = table["period_start"]
        try:
            if pa.types.is_string(column.type):
                column = pc.strptime(pc.replace_substring_regex(column, r"(Z|\+00:?00)$", ""),
                                     "%Y-%m-%dT%H:%M:%S", "ns")
            column = column.cast(pa.timestamp("ns", tz="UTC"))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InputFormatError(path, f"column period_start: not a time ({exc})") from None
        table = table.set_column(table.schema.get_field_index("period_start"),
                                 "period_start", column)
    return table


def build_timeline(rules: pa.Table) -> Timeline:
    """Per rule, its host count in every period of ``rules``."""
    if rules.num_rows == 0:
        raise UsageError("the rules table is empty: nothing to follow through time")
    ts = rules.column("period_start").cast(pa.int64()).to_numpy()
    text = [rule_text(a, c) for a, c in zip(rules.column("antecedent").to_pylist(),
                                           rules.column("consequent").to_pylist(), strict=True)]
    names, rule_index = np.unique(np.array(text, dtype=object), return_inverse=True)
    periods, period_index = np.unique(ts, return_inverse=True)
    support = rules.column("support_hosts").to_numpy()
    counts = np.zeros((len(names), len(periods)), np.int64)
    np.maximum.at(counts, (rule_index, period_index), support)
    mirai = (rules.column("mirai_share").to_numpy(zero_copy_only=False)
             if "mirai_share" in rules.column_names else np.full(len(ts), np.nan))
    share = np.full(counts.shape, np.nan)
    share[rule_index, period_index] = mirai
    seen = counts > 0
    first = np.argmax(seen, axis=1)
    last = len(periods) - 1 - np.argmax(seen[:, ::-1], axis=1)
    peak = np.argmax(counts, axis=1)
    prev = np.zeros_like(seen)
    prev[:, 1:] = seen[:, :-1]
    nxt = np.zeros_like(seen)
    nxt[:, :-1] = seen[:, 1:]
    appears = [periods[row].tolist() for row in (seen & ~prev)]
    # a rule vanishes in the period after its last one, unless the input ends there
    vanish_mask = seen & ~nxt
    vanish_mask[:, -1] = False
    vanishes = [periods[np.flatnonzero(row) + 1].tolist() for row in vanish_mask]
    rows = np.arange(len(names))
    ts_type = TIMELINE_SCHEMA.field("first_seen").type
    table = pa.table({
        "rule": pa.array(names.tolist(), pa.string()),
        "family": pa.array([_family(n) for n in names], pa.string()),
        "first_seen": pa.array(periods[first]).cast(ts_type),
        "last_seen": pa.array(periods[last]).cast(ts_type),
        "periods_seen": seen.sum(axis=1),
        "peak_hosts": counts[rows, peak],
        "peak_period": pa.array(periods[peak]).cast(ts_type),
        "mirai_share_at_peak": share[rows, peak],
        "daily_hosts": pa.array(counts.tolist(), pa.list_(pa.int64())),
        "appears": pa.array(appears, pa.list_(pa.int64())).cast(pa.list_(ts_type)),
        "vanishes": pa.array(vanishes, pa.list_(pa.int64())).cast(pa.list_(ts_type)),
    }, schema=TIMELINE_SCHEMA)
    order = np.lexsort((names, -counts[rows, peak]))
    return Timeline(periods, table.take(pa.array(order)), counts[order])


def _family(rule: str) -> str:
    """The item kind shared by all of a rule's items (``win``, ``tos``, ``dport``...), its chart
    panel, as in the published figures; ``mixed`` when its items are of several kinds."""
    kinds = {item.strip(" {}").split("=", 1)[0]
             for side in rule.split(" -> ") for item in side.strip("{}").split(", ")}
    return kinds.pop() if len(kinds) == 1 else "mixed"


def parse_marker(text: str) -> Marker:
    """``2016-09-30=Mirai source code published`` -> Marker."""
    date, sep, label = text.partition("=")
    try:
        ns = int(np.datetime64(date.strip(), "ns").astype(np.int64))
    except ValueError:
        raise UsageError(f"event {text!r}: expected DATE=LABEL, e.g. "
                         "2016-09-30='Mirai source code published'") from None
    if not sep or not label.strip():
        raise UsageError(f"event {text!r}: expected DATE=LABEL")
    return Marker(ns, label.strip())


def axis_span(periods: np.ndarray) -> tuple[int, int]:
    """The chart's time axis (ns): the periods with half the shortest gap (one day for a
    single period, which matplotlib would otherwise stretch over years) of margin each side;
    event markers outside it are left out."""
    step = int(np.min(np.diff(periods))) if len(periods) > 1 else 2 * 86400 * 10**9
    return int(periods[0]) - step // 2, int(periods[-1]) + step // 2


def chart_png(timeline: Timeline, markers: list[Marker], top: int = 6,
              families: tuple[str, ...] = ("win", "tos", "dport")) -> bytes:
    """Daily host counts of the ``top`` rules (by peak) per item family, one panel each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    present = timeline.table.column("family").to_pylist()
    panels = [f for f in families if f in present] or sorted(set(present))[:3]
    days = timeline.periods.astype("datetime64[ns]")
    low, high = axis_span(timeline.periods)
    markers = [m for m in markers if low <= m.ns <= high]
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 3.2 * len(panels)), sharex=True,
                             squeeze=False)
    names = timeline.table.column("rule").to_pylist()
    for ax, family in zip(axes[:, 0], panels, strict=True):
        chosen = [i for i, f in enumerate(present) if f == family][:top]
        for i in chosen:
            ax.plot(days, timeline.counts[i], marker=".", linewidth=1.2, label=names[i])
        for marker in markers:
            ax.axvline(np.datetime64(marker.ns, "ns"), color="black", linestyle="--",
                       linewidth=0.8)
        ax.set_title(f"{family} rules" if family != "mixed" else "rules mixing item kinds")
        ax.set_ylabel("hosts")
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(alpha=0.3)
    for marker in markers:
        axes[0, 0].annotate(marker.label, xy=(np.datetime64(marker.ns, "ns"), 1),
                            xycoords=("data", "axes fraction"), rotation=90, fontsize=7,
                            va="top", ha="right")
    bottom = axes[-1, 0]
    bottom.set_xlim(np.datetime64(low, "ns"), np.datetime64(high, "ns"))
    locator = mdates.AutoDateLocator(minticks=3, maxticks=10)
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def _day(ns: object) -> str:
    return "" if ns is None else str(np.datetime64(int(ns), "ns").astype("datetime64[D]"))


def html_page(timeline: Timeline, png: bytes, markers: list[Marker], limit: int = 200) -> str:
    """A self-contained page: the chart inline (base64 PNG) and the rule table, all escaped."""
    table = timeline.table
    rows = []
    for r in range(min(limit, table.num_rows)):
        share = table.column("mirai_share_at_peak")[r].as_py()
        appears = ", ".join(_day(v.value) for v in table.column("appears")[r].values) \
            if table.column("appears")[r].values is not None else ""
        vanishes = ", ".join(_day(v.value) for v in table.column("vanishes")[r].values) \
            if table.column("vanishes")[r].values is not None else ""
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in (
            table.column("rule")[r].as_py(),
            _day(table.column("first_seen")[r].value),
            _day(table.column("last_seen")[r].value),
            table.column("periods_seen")[r].as_py(),
            f"{table.column('peak_hosts')[r].as_py():,}",
            _day(table.column("peak_period")[r].value),
            "" if share is None or np.isnan(share) else f"{share:.0%}",
            appears, vanishes)) + "</tr>")
    events = "".join(f"<li>{_day(m.ns)}: {html.escape(m.label)}</li>" for m in markers)
    image = base64.b64encode(png).decode("ascii")
    header = "".join(f"<th>{h}</th>" for h in (
        "rule", "first seen", "last seen", "periods", "peak hosts", "peak", "Mirai share at peak",
        "appears", "vanishes"))
    span = f"{_day(timeline.periods[0])} .. {_day(timeline.periods[-1])}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>darkscope rule timeline</title>
<style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:2px 6px;text-align:left}}img{{max-width:100%}}</style>
</head><body>
<h1>Scanner fingerprint rules through time</h1>
<p>{len(timeline.periods)} periods ({span}), {table.num_rows:,} rules.</p>
{f"<h2>Events</h2><ul>{events}</ul>" if events else ""}
<img alt="daily host counts per rule" src="data:image/png;base64,{image}">
<h2>Rules (by peak hosts{f", first {limit}" if table.num_rows > limit else ""})</h2>
<table><thead><tr>{header}</tr></thead><tbody>
{"".join(rows)}
</tbody></table></body></html>
"""
