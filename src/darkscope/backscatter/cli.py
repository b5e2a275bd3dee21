"""``darkscope backscatter`` (train, detect, victims, evaluate) and ``darkscope review``."""

from __future__ import annotations

import ipaddress
import json
import re
import time
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from darkscope import progress
from darkscope.clikit import common, format_option, output_option, overwrite_option, seed_option
from darkscope.errors import UsageError
from darkscope.io import check_output, write_json, write_table

if TYPE_CHECKING:
    from darkscope.backscatter.features import FeatureDefinition
    from darkscope.backscatter.persist import SavedModel
    from darkscope.backscatter.training import TrainReport

store_option = click.option(
    "--store", "store_path", envvar="DARKSCOPE_STORE", default="darkscope.db",
    show_default=True, type=click.Path(dir_okay=False),
    help="Review store (SQLite file; env DARKSCOPE_STORE).")
rules_option = click.option(
    "--rules", "rules_path", metavar="FILE|minimal",
    help="Rules file (TOML) instead of the built-in rules, or `minimal` for the original "
         "method's rule set.")
telescope_option = click.option(
    "--telescope", default="/16", show_default=True,
    help="Telescope networks: 198.51.0.0/16, 2001:db8:ab::/48, or both comma-separated; or "
         "an IPv4 prefix length (/16). A family without a network is inferred: the /16 (IPv4) "
         "or /48 (IPv6) block holding most destinations.")
oracle_options = [
    click.option("--truth", type=click.Path(exists=True, dir_okay=False),
                 help="Simulator truth table (needed by --expert-oracle)."),
    click.option("--expert-oracle", is_flag=True,
                 help="Answer the review queue from --truth, standing in for experts."),
    click.option("--expert-budget", type=click.IntRange(0), default=None,
                 help="At most this many windows answered by the oracle (default: all)."),
]


def _oracle(func):
    for option in reversed(oracle_options):
        func = option(func)
    return func


def oracle_truth(truth: str | None, expert_oracle: bool):
    """The truth table ``--expert-oracle`` answers from (None without the oracle)."""
    from darkscope.backscatter.tables import read_table

    if expert_oracle and not truth:
        raise UsageError("--expert-oracle needs --truth")
    if truth and not expert_oracle:
        click.echo("warning: --truth is only read with --expert-oracle; ignoring it", err=True)
    return read_table(truth, "truth table") if truth and expert_oracle else None


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _seconds(text: str, option: str = "--window") -> int:
    """``90s``, ``10m``, ``1h``, ``1d`` -> whole seconds."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", text)
    if not match or int(match.group(1)) == 0:
        raise UsageError(f"{option}: expected a positive duration like 10m or 1h, got {text!r}")
    return int(match.group(1)) * _UNITS[match.group(2)]


def _host(text: str) -> int:
    try:
        return int(ipaddress.IPv4Address(text))
    except ValueError:
        raise UsageError(f"not an IPv4 address: {text!r}") from None


@click.group()
def backscatter() -> None:
    """DDoS backscatter detection: rules, one-class gate, calibrated L2-SVM, experts.

    Inputs are captures (pcap/pcapng, compressed, directories, globs) or Parquet packet
    tables from `darkscope ingest`. See docs/backscatter.md.
    """


@backscatter.command()
@click.argument("inputs", nargs=-1, required=True)
@output_option(help="Model directory to write.")
@click.option("--update", "update_path", type=click.Path(exists=True, file_okay=False),
              help="Continue training this model (online update) instead of starting anew; "
                   "its window and feature variant are kept.")
@click.option("--window", default="1h", show_default=True,
              help="Time window per host (e.g. 10m, 1h); ignored with --window-packets.")
@click.option("--window-packets", type=click.IntRange(1),
              help="Windows of N consecutive packets of a host instead of time windows.")
@click.option("--variant", type=click.Choice(["dst-span", "payload"]), default="dst-span",
              show_default=True, help="Features 16-17: spans between destination addresses "
              "(book chapter; better on held-out data, docs/backscatter.md) or payload size "
              "(2015 paper).")
@click.option("--context", default="6h", show_default=True,
              help="Context span (a multiple of --window): a sparse window is judged on its "
                   "host's features over this span.")
@click.option("--context-below", type=click.IntRange(0), default=10, show_default=True,
              help="Windows with fewer packets than this are judged on their host's context "
                   "when the host sent more in it (0: every window on its own features).")
@_oracle
@rules_option
@store_option
@telescope_option
@seed_option
@overwrite_option
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@common
def train(inputs: tuple[str, ...], output: str, update_path: str | None, window: str,
          window_packets: int | None, variant: str, context: str, context_below: int,
          truth: str | None, expert_oracle: bool,
          expert_budget: int | None, rules_path: str | None, store_path: str, telescope: str,
          seed: int, overwrite: bool, as_json: bool) -> None:
    """Train (or update) a detector model from traffic.

    Rules label what they can; the model's confident verdicts and the expert labels in the
    review store are learnt too; what stays uncertain is queued for experts. With
    --expert-oracle, the queue is answered from the simulator truth table.
    Example: darkscope backscatter train sim.pcap --truth truth.parquet --expert-oracle -o model/
    """
    from darkscope.backscatter import persist
    from darkscope.backscatter.rules import load_rules
    from darkscope.backscatter.training import train_stream
    from darkscope.store import ReviewStore

    check_output(output, overwrite)
    truth_table = oracle_truth(truth, expert_oracle)
    rules = load_rules(rules_path)
    base = persist.load(update_path) if update_path else None
    definition = feature_definition(window, window_packets, variant, context, context_below)
    with ReviewStore(store_path) as store, progress.track("train"):
        saved, report, scope, packets = train_stream(
            list(inputs), rules, telescope, definition=definition, base=base, store=store,
            truth=truth_table, expert_budget=expert_budget, seed=seed)
    persist.save(saved, output, overwrite=overwrite)
    report_trained(saved, report, str(scope), packets, output, as_json)


def feature_definition(window: str, window_packets: int | None, variant: str, context: str,
                       context_below: int) -> FeatureDefinition:
    """The feature definition ``backscatter train``'s options name."""
    from darkscope.backscatter.features import FeatureDefinition

    shared = {"variant": variant, "context_s": _seconds(context, "--context"),
              "context_below": context_below}
    if window_packets:
        return FeatureDefinition(window_s=None, window_packets=window_packets, **shared)
    return FeatureDefinition(window_s=_seconds(window), **shared)


def report_trained(saved: SavedModel, report: TrainReport, telescope: str, packets: int,
                   output: str, as_json: bool) -> None:
    """What ``backscatter train`` prints once the model is saved (on either engine)."""
    summary = {"model": output, "packets": packets, "telescope": telescope,
               "features": saved.definition.describe(), **report.as_dict()}
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(f"{report.windows:,} host-windows ({packets:,} packets): "
               f"{report.rule_labelled:,} labelled by rules, {report.expert_labelled:,} by "
               f"experts, {report.auto_labelled:,} by confident verdicts; "
               f"{report.sent_to_experts:,} sent to experts ({report.answered_by_oracle:,} "
               f"answered by the oracle, {report.queued:,} queued) -> {output} "
               f"in {report.seconds:.1f} s")


@backscatter.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--model", "model_path", required=True,
              type=click.Path(exists=True, file_okay=False), help="Model directory.")
@output_option(help="Verdicts: one row per host-window (Parquet, or .csv/.jsonl).")
@click.option("--victims", "victims_path", type=click.Path(dir_okay=False),
              help="Also write the victims table (attacks seen in the DDoS verdicts).")
@_oracle
@rules_option
@store_option
@click.option("--no-store", is_flag=True, help="Neither read labels nor queue reviews.")
@telescope_option
@format_option
@overwrite_option
@common
def detect(inputs: tuple[str, ...], model_path: str, output: str, victims_path: str | None,
           truth: str | None, expert_oracle: bool, expert_budget: int | None,
           rules_path: str | None, store_path: str, no_store: bool, telescope: str,
           fmt: str | None, overwrite: bool) -> None:
    """Classify every host-window: ddos, not_ddos or needs_review.

    Output columns: src, window_start, window_end, packets, the 17 features, verdict,
    decided_by (rule:<id>, model, expert), confidence. Windows left for experts are queued
    in the review store (see `darkscope review list`); expert labels there are applied.
    """
    from darkscope.backscatter import persist
    from darkscope.backscatter.flow import detect as run_detect
    from darkscope.backscatter.rules import load_rules
    from darkscope.backscatter.victims import victims as find_victims
    from darkscope.store import ReviewStore

    check_output(output, overwrite)
    if victims_path:
        check_output(victims_path, overwrite)
    truth_table = oracle_truth(truth, expert_oracle)
    saved = persist.load(model_path)
    rules = load_rules(rules_path)
    started = time.perf_counter()
    with (nullcontext() if no_store else ReviewStore(store_path)) as store, \
            progress.track("detect"):
        result = run_detect(list(inputs), saved, rules, telescope, store=store,
                            truth=truth_table, expert_budget=expert_budget)
    seconds = time.perf_counter() - started
    write_table(result.verdicts, output, fmt, overwrite=overwrite)
    click.echo(f"{result.verdicts.num_rows:,} host-windows ({result.packets:,} packets) in "
               f"{seconds:.2f} s, telescope {result.telescope}: {result.count('ddos'):,} ddos, "
               f"{result.count('not_ddos'):,} not_ddos, {result.count('needs_review'):,} "
               f"needs_review ({result.queued:,} queued in "
               f"{'no store' if no_store else store_path}) -> {output}")
    if result.unqueued_ipv6:
        click.echo(f"warning: {result.unqueued_ipv6:,} IPv6 host-window(s) need review but "
                   "were not queued (the review store keys hosts by IPv4 address); find them "
                   f"in {output} where verdict = 'needs_review' and src6 is set", err=True)
    if result.late_rows:
        click.echo(f"warning: {result.late_rows:,} packets arrived after their window was "
                   "closed (input not in time order); those windows appear more than once",
                   err=True)
    if victims_path:
        found = find_victims(result.ddos_packets, result.verdicts, result.telescope)
        write_table(found, victims_path, overwrite=overwrite)
        click.echo(f"{found.num_rows:,} attacks on {len(set(found['victim'].to_pylist())):,} "
                   f"victims -> {victims_path}")


@backscatter.command()
@click.argument("verdicts_path", metavar="VERDICTS", type=click.Path(exists=True))
@click.argument("inputs", nargs=-1, required=True)
@output_option(help="Victims table (Parquet, or .csv/.jsonl).")
@telescope_option
@click.option("--gap", type=click.FloatRange(min=0, min_open=True), default=300.0,
              show_default=True, help="Seconds of silence that end an attack (flow timeout).")
@format_option
@overwrite_option
@common
def victims(verdicts_path: str, inputs: tuple[str, ...], output: str, telescope: str,
            gap: float, fmt: str | None, overwrite: bool) -> None:
    """Victims under attack from DDoS verdicts and the same packets: per attack the victim,
    start, end, packets, reply ports and the attack rate scaled by the telescope's share of
    the address space (Moore et al.)."""
    import pyarrow as pa

    from darkscope.backscatter.inputs import iter_packets
    from darkscope.backscatter.tables import read_table
    from darkscope.backscatter.telescope import resolve
    from darkscope.backscatter.victims import ddos_packets, ddos_windows
    from darkscope.backscatter.victims import victims as find_victims
    from darkscope.errors import DarkscopeError

    check_output(output, overwrite)
    verdicts = read_table(verdicts_path, "verdicts")
    windows = ddos_windows(verdicts)
    scope, parts = None, []
    for batch in iter_packets(list(inputs)):  # keep only the DDoS windows' packets
        if batch.num_rows:
            scope = resolve(telescope, batch, scope)
        parts.append(ddos_packets(batch, windows))
    if scope is None:
        raise DarkscopeError(f"{', '.join(inputs)}: no IP packets with a timestamp")
    table = pa.concat_tables(parts)
    found = find_victims(table, verdicts, scope, gap_s=gap)
    write_table(found, output, fmt, overwrite=overwrite)
    click.echo(f"{found.num_rows:,} attacks on {len(set(found['victim'].to_pylist())):,} "
               f"victims (telescope {scope.network}, rates x{1 / scope.share:,.0f}) -> {output}")


@backscatter.command()
@click.argument("verdicts_path", metavar="VERDICTS", type=click.Path(exists=True))
@click.option("--truth", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Simulator truth table (one row per source host).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@output_option(required=False, help="Also write the report here as JSON.")
@overwrite_option
@common
def evaluate(verdicts_path: str, truth: str, as_json: bool, output: str | None,
             overwrite: bool) -> None:
    """Precision, recall and F1 of DDoS, confusion per simulated kind, share sent to
    experts, and the same scores for the rules alone."""
    from darkscope.backscatter.evaluate import evaluate as run_evaluate
    from darkscope.backscatter.evaluate import format_report
    from darkscope.backscatter.tables import read_table

    if output:
        check_output(output, overwrite)
    report = run_evaluate(read_table(verdicts_path, "verdicts"), read_table(truth, "truth"))
    if output:
        write_json(report, output, overwrite)
    click.echo(json.dumps(report) if as_json else format_report(report))
    if report["left_out_windows"]:
        click.echo(f"warning: {report['left_out_windows']:,} host-windows belong to hosts the "
                   "truth table does not list; they are left out of every score", err=True)


@click.group()
def review() -> None:
    """The expert review queue of the backscatter detector (list, label)."""


@review.command("list")
@store_option
@click.option("--all", "show_all", is_flag=True, help="Include items already labelled.")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@common
def review_list(store_path: str, show_all: bool, limit: int, as_json: bool) -> None:
    """Host-windows waiting for an expert, least confident first."""
    from darkscope.store import ReviewStore

    if not Path(store_path).exists():
        raise UsageError(f"{store_path}: no review store yet (detect or train creates it)")
    with ReviewStore(store_path) as store:
        items = store.items(pending_only=not show_all, limit=limit)
    for item in items:
        start = datetime.fromtimestamp(item.window_start / 1e9, UTC).isoformat()
        host = str(ipaddress.IPv4Address(item.src))
        if as_json:
            click.echo(json.dumps({"host": host, "window_start": start,
                                   "packets": item.packets, "reason": item.reason,
                                   "confidence": item.confidence, "label": item.label,
                                   "labelled_by": item.labelled_by}))
        else:
            label = f"  -> {item.label} ({item.labelled_by})" if item.label else ""
            click.echo(f"{host:>15}  {start}  {item.packets:>7} pkts  {item.reason:<14} "
                       f"confidence {item.confidence:.2f}{label}")
    if not as_json and not items:
        click.echo("nothing waiting for review" if not show_all else "the queue is empty")


@review.command("label")
@click.argument("host")
@click.option("--as", "label", required=True, type=click.Choice(["ddos", "scan", "other"]),
              help="The expert's verdict.")
@click.option("--note", help="Free text kept with the label.")
@click.option("--window", "window_start", help="Label one window (its start, ISO 8601) "
              "instead of every window of the host.")
@click.option("--who", help="Who labels (default: the login name).")
@click.option("--force", is_flag=True,
              help="Label a host (or window) that was never queued for review.")
@store_option
@common
def review_label(host: str, label: str, note: str | None, window_start: str | None,
                 who: str | None, force: bool, store_path: str) -> None:
    """Label a host (all its windows, or one) as ddos, scan or other; the next training
    update learns from it and detect applies it."""
    from darkscope.store import ReviewStore

    address = _host(host)
    start = None
    if window_start:
        try:
            moment = datetime.fromisoformat(window_start.replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(f"--window: not an ISO 8601 date-time: {window_start!r}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        start = int(moment.timestamp()) * 1_000_000_000
    if not force and not Path(store_path).exists():
        raise UsageError(f"{store_path}: no review store yet, so {host} was never queued; "
                         "check --store, or label it anyway with --force")
    with ReviewStore(store_path) as store:
        if not force and not store.has_queued(address, start):
            what = host if start is None else f"{host} at window {window_start}"
            raise UsageError(f"{what} was never queued for review in {store_path} (a typo?); "
                             "label it anyway with --force")
        record = store.label(address, label, window_start=start, note=note, who=who)
    scope = "all windows" if start is None else f"window {window_start}"
    click.echo(f"{host} ({scope}) labelled {record.label} by {record.who} at {record.at}")
