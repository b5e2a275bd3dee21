"""``darkscope rules mine|timeline`` and ``darkscope hosts attribute``."""

from __future__ import annotations

from pathlib import Path

import click
import pyarrow as pa

from darkscope.clikit import common, format_option, output_option, overwrite_option
from darkscope.errors import UsageError
from darkscope.io import check_output, write_table
from darkscope.progress import track


def csv_ready(table: pa.Table, path: str, fmt: str | None) -> pa.Table:
    """CSV has no list type: write item lists as JSON arrays (items may contain commas)."""
    import json

    from darkscope.io import format_from_path

    if format_from_path(path, fmt) != "csv":
        return table
    for i, field in enumerate(table.schema):
        if pa.types.is_list(field.type):
            text = [None if v is None else json.dumps(v) for v in table.column(i).to_pylist()]
            table = table.set_column(i, field.name, pa.array(text, pa.string()))
    return table


def print_top_patterns(table: pa.Table, top: int) -> None:
    """The ``top`` patterns by lift, each itemset once: sibling cores such as {1320} -> {792}
    and {792} -> {1320} lie inside one published itemset, which is printed once."""
    from darkscope.patterns.mining import form_items, rule_text

    if not top or not table.num_rows:
        return
    core = table.filter(table["core"]).sort_by([("lift", "descending"),
                                                ("support_hosts", "descending")])
    shown: list[tuple[object, set[str]]] = []
    lines = []
    for row in core.to_pylist():
        items = set(row["antecedent"] + row["consequent"])
        if any(period == row["period_start"] and items <= seen for period, seen in shown):
            continue
        form = row["published_form"]
        shown.append((row["period_start"], form_items(form) if form else items))
        text = form or rule_text(row["antecedent"], row["consequent"])
        lines.append(f"  {row['period_start']:%Y-%m-%d %H:%M}  lift {row['lift']:6.2f}  "
                     f"{row['support_hosts']:8,} hosts  Mirai {row['mirai_share']:4.0%}  {text}")
        if len(lines) == top:
            break
    click.echo("top patterns by lift:\n" + "\n".join(lines))


_PERIOD_HELP = "Length of one period (transaction window): 1d, 12h, 1w..."


@click.group()
def rules() -> None:
    """Scanner fingerprint mining: association rules over hosts, and their timeline."""


@rules.command("mine")
@click.argument("inputs", nargs=-1, required=True)
@output_option()
@click.option("--period", default="1d", show_default=True, help=_PERIOD_HELP)
@click.option("--min-hosts", type=int, default=None,
              help="Minimum support in hosts per period (default 1000 unless --min-support).")
@click.option("--min-support", type=float, default=None,
              help="Minimum support as a fraction of the period's hosts (instead of --min-hosts).")
@click.option("--min-confidence", type=float, default=0.9, show_default=True)
@click.option("--min-lift", type=click.FloatRange(0), default=1.05, show_default=True,
              help="Minimum lift: how much more often the consequent holds among the rule's "
                   "hosts than among all hosts (1 = no more; 0 keeps every rule).")
@click.option("--top", type=click.IntRange(0), default=10, show_default=True,
              help="Patterns to print (highest lift first; 0: none).")
@click.option("--max-len", type=int, default=4, show_default=True,
              help="Most items in a rule (antecedent and consequent together).")
@click.option("--items", default=None,
              help="Comma-separated item kinds (default: the catalogue's defaults: win,tos,dport).")
@click.option("--catalogue", type=click.Path(dir_okay=False), default=None,
              help="Item catalogue TOML (default: the built-in one).")
@click.option("--min-share", type=float, default=0.05, show_default=True,
              help="Per host and item kind, keep values carrying at least this share of its SYNs.")
@click.option("--max-values", type=int, default=8, show_default=True,
              help="Per host and item kind, keep at most this many values.")
@click.option("--sweep-values", type=int, default=64, show_default=True,
              help="A host with more distinct values of a kind gets one NAME=*sweep* item.")
@click.option("--threshold", type=float, default=0.9, show_default=True,
              help="Attribution: share of a host's packets a fingerprint must match.")
@click.option("--counter", type=click.Choice(["auto", "apriori", "fpgrowth"]), default="auto",
              show_default=True,
              help="Itemset counter: compiled level-wise (<= 4 items) or pyfim FP-growth.")
@click.option("--all-rules", is_flag=True,
              help="Write every rule, not only one core rule per pattern.")
@format_option
@overwrite_option
@common
def mine_command(inputs: tuple[str, ...], output: str, period: str, min_hosts: int | None,
                 min_support: float | None, min_confidence: float, min_lift: float, max_len: int,
                 items: str | None, catalogue: str | None, min_share: float, max_values: int,
                 sweep_values: int, threshold: float, counter: str, all_rules: bool, top: int,
                 fmt: str | None, overwrite: bool) -> None:
    """Mine association rules X -> y over the hosts of each period.

    INPUTS are captures (pcap/pcapng, compressed, directories, globs) or Parquet packet tables
    from `darkscope ingest`, in time order. Each source host's TCP SYN packets of a period make
    one transaction of items such as win=1320, tos=24, dport=2323; support is counted in hosts.
    By default one row per pattern is written (its core rule, with the number of variants
    and its published form such as `win: {1320, 2376} -> {792}`), highest lift first; every
    row carries the share of its hosts attributed to Mirai.

    Example: darkscope rules mine 'q3/*.pcap.gz' --min-hosts 1000 -o rules.parquet
    """
    from darkscope.patterns.pipeline import MineSummary, mine

    check_output(output, overwrite)
    settings, chosen = mine_settings(period, min_hosts, min_support, min_confidence, min_lift,
                                     max_len, items, catalogue, min_share, max_values,
                                     sweep_values, threshold, counter, all_rules)
    summary = MineSummary()
    with track("mining", unit="packets") as tracker:
        table = mine(list(inputs), settings, chosen, tracker, summary)
    write_table(csv_ready(table, output, fmt), output, fmt, overwrite=overwrite)
    report_mined(table, summary, output, top)


def mine_settings(period: str, min_hosts: int | None, min_support: float | None,
                  min_confidence: float, min_lift: float, max_len: int, items: str | None,
                  catalogue: str | None, min_share: float, max_values: int, sweep_values: int,
                  threshold: float, counter: str, all_rules: bool):
    """The settings and item catalogue that ``rules mine``'s options ask for (whatever
    engine runs it)."""
    from darkscope.patterns.catalogue import load_catalogue
    from darkscope.patterns.pipeline import MineSettings, parse_period
    from darkscope.patterns.transactions import ItemPolicy

    if min_hosts is not None and min_support is not None:
        raise UsageError("give --min-hosts or --min-support, not both")
    if min_hosts is None and min_support is None:
        min_hosts = 1000
    settings = MineSettings(
        period_ns=parse_period(period), min_hosts=min_hosts, min_support=min_support,
        min_confidence=min_confidence, min_lift=min_lift, max_len=max_len,
        policy=ItemPolicy(min_share, max_values, sweep_values), attribution_threshold=threshold,
        all_rules=all_rules, counter=counter)
    names = None if items is None else [n.strip() for n in items.split(",") if n.strip()]
    return settings, load_catalogue(catalogue, names)


def report_mined(table: pa.Table, summary, output: str, top: int) -> None:
    """What ``rules mine`` found, as it prints it: counts, the top patterns, skipped periods."""
    click.echo(f"{summary.periods} periods, {summary.hosts:,} host transactions, "
               f"{summary.rules:,} rules in {summary.patterns:,} patterns -> {output} "
               f"({table.num_rows:,} rows) in {summary.seconds:.1f} s")
    print_top_patterns(table, top)
    if summary.skipped_periods:
        click.echo(f"warning: {len(summary.skipped_periods)} period(s) had fewer hosts than the "
                   f"minimum support and gave no rules (first: {summary.skipped_periods[0]})",
                   err=True)


@rules.command("timeline")
@click.argument("rules_tables", nargs=-1, required=True, type=click.Path(dir_okay=False))
@output_option(help="HTML page (chart inline and the rule table).")
@click.option("--png", type=click.Path(dir_okay=False), default=None,
              help="Also write the chart as a PNG file.")
@click.option("--table", type=click.Path(dir_okay=False), default=None,
              help="Also write the timeline table (Parquet/CSV/JSONL by suffix).")
@click.option("--event", "events", multiple=True,
              help="Marker DATE=LABEL on the charts, e.g. 2016-09-30='source code published'.")
@click.option("--scenario", default=None,
              help="Take event markers from a simulator scenario (e.g. mirai-2016).")
@click.option("--match", default=None,
              help="Only rules whose text contains this (e.g. 'tos=24').")
@click.option("--top", type=click.IntRange(1), default=6, show_default=True,
              help="Rules per chart panel (highest peak first).")
@overwrite_option
@common
def timeline_command(rules_tables: tuple[str, ...], output: str, png: str | None,
                     table: str | None, events: tuple[str, ...], scenario: str | None,
                     match: str | None, top: int, overwrite: bool) -> None:
    """Follow rules through time: first/last period, peak, daily hosts; charts and HTML.

    Example: darkscope rules timeline rules.parquet --scenario mirai-2016 -o timeline.html
    """
    from darkscope.patterns.timeline import read_rules

    check_timeline_outputs(output, png, table, overwrite)
    write_timeline(read_rules(list(rules_tables)), output, png, table, events, scenario, match,
                   top, overwrite)


def check_timeline_outputs(output: str, png: str | None, table: str | None,
                           overwrite: bool) -> None:
    """Refuse before any work when an output of ``rules timeline`` exists."""
    for path in (output, png, table):
        if path is not None:
            check_output(path, overwrite)


def write_timeline(rules_table: pa.Table, output: str, png: str | None, table: str | None,
                   events: tuple[str, ...], scenario: str | None, match: str | None, top: int,
                   overwrite: bool) -> None:
    """``rules timeline``'s outputs from the rules read (on either engine)."""
    from darkscope.io import atomic_path
    from darkscope.patterns.timeline import (
        Marker,
        build_timeline,
        chart_png,
        html_page,
        parse_marker,
    )

    markers = [parse_marker(text) for text in events]
    if scenario is not None:
        from darkscope.simulate import load_scenario

        markers += [Marker(ns, label) for ns, label in load_scenario(scenario).events]
    if match:
        from darkscope.patterns.mining import rule_text

        texts = [rule_text(a, c) for a, c in zip(rules_table.column("antecedent").to_pylist(),
                 rules_table.column("consequent").to_pylist(), strict=True)]
        rules_table = rules_table.filter(pa.array([match in t for t in texts]))
    timeline = build_timeline(rules_table)
    image = chart_png(timeline, markers, top=top)
    with atomic_path(output, overwrite) as tmp:
        Path(tmp).write_text(html_page(timeline, image, markers), encoding="utf-8")
    if png is not None:
        with atomic_path(png, overwrite) as tmp:
            Path(tmp).write_bytes(image)
    if table is not None:
        write_table(csv_ready(timeline.table, table, None), table, overwrite=overwrite)
    click.echo(f"{timeline.table.num_rows:,} rules over {len(timeline.periods)} periods -> "
               f"{output}")


@click.group()
def hosts() -> None:
    """Per-host views of darknet traffic: tool fingerprints and bot attribution."""


@hosts.command("attribute")
@click.argument("inputs", nargs=-1, required=True)
@output_option()
@click.option("--period", default="1d", show_default=True, help=_PERIOD_HELP)
@click.option("--threshold", type=float, default=0.9, show_default=True,
              help="A host belongs to a family when more than this share of its packets match.")
@format_option
@overwrite_option
@common
def attribute_command(inputs: tuple[str, ...], output: str, period: str, threshold: float,
                      fmt: str | None, overwrite: bool) -> None:
    """Attribute each source host and period to a tool family (mirai, zmap, masscan, unknown).

    Writes src, period_start, family, match_share, packets.

    Example: darkscope hosts attribute q3.pcap -o hosts.parquet
    """
    from darkscope.patterns.pipeline import HOSTS_SCHEMA, attribute_periods, parse_period

    check_output(output, overwrite)
    with track("attributing", unit="packets") as tracker:
        parts = list(attribute_periods(list(inputs), parse_period(period), threshold, tracker))
    table = pa.concat_tables(parts) if parts else HOSTS_SCHEMA.empty_table()
    write_table(table, output, fmt, overwrite=overwrite)
    counts = table.group_by("family").aggregate([("src", "count")]).to_pylist()
    report_attributed({row["family"]: row["src_count"] for row in counts}, output)


def report_attributed(counts: dict[str, int], output: str) -> None:
    """What ``hosts attribute`` found: host-periods per family, commonest first."""
    text = ", ".join(f"{family} {n:,}" for family, n in
                     sorted(counts.items(), key=lambda item: -item[1]))
    click.echo(f"{sum(counts.values()):,} host-periods ({text}) -> {output}")
