"""The parts' commands with ``--engine spark``: the same arguments, run on a Spark cluster.

Inputs are packet tables (``darkscope ingest`` output: a Parquet file, an hour-partitioned
directory, or globs of them) on any file system Spark reads; captures must be ingested first,
since a pcap is one sequential stream no cluster can split. Outputs are Parquet directories
written by the executors (part files that DuckDB, pandas and Spark read as one table:
``'verdicts.parquet/*.parquet'``); on a local path through a temporary directory renamed into
place, elsewhere (HDFS, S3) by Spark's own output committer.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import click

from darkscope.errors import UsageError

_CAPTURES = (".pcap", ".pcapng", ".cap", ".gz", ".zst", ".xz")


def _packet_tables(inputs: tuple[str, ...]) -> list[str]:
    for given in inputs:
        if "://" not in given and Path(given).suffix.lower() in _CAPTURES:
            raise UsageError(f"{given}: --engine spark reads packet tables; ingest the "
                             f"capture first: darkscope ingest {given} -o packets/")
        _must_exist(given, given)
    return list(inputs)


def _must_exist(given: str, name: str) -> None:
    """A local path (not a URL or a glob Spark expands) that is not there is a user error."""
    if "://" not in given and not any(c in given for c in "*?[") and not Path(given).exists():
        raise UsageError(f"{name}: no such file or directory")


def _refuse(**given: Any) -> None:
    for flag, value in given.items():
        if value:
            raise UsageError(f"--{flag.replace('_', '-')} is not available with --engine "
                             "spark yet; run it with the local engine")


def _start(master: str | None, conf: tuple[str, ...], inputs: tuple[str, ...],
           outputs: tuple[str | None, ...], overwrite: bool, fmt: str | None = None,
           any_format: bool = False) -> tuple[Any, list[str]]:
    """What every Spark command checks before it starts a session (output format, outputs
    free, inputs packet tables), then the session and the input paths."""
    from darkscope.engines.spark.session import parse_conf, session
    from darkscope.io import check_output

    if not any_format and fmt not in (None, "parquet"):
        raise UsageError("--engine spark writes Parquet (a directory of part files)")
    for path in outputs:
        if path and "://" not in path:
            check_output(path, overwrite)
    paths = _packet_tables(inputs)
    return session(master, parse_conf(conf)), paths


def write_parquet(frame: Any, output: str, overwrite: bool) -> None:
    """``frame`` as a Parquet directory at ``output``, never half-written on a local disk."""
    from darkscope.io import atomic_path

    if "://" in output and not output.startswith("file:"):
        frame.write.mode("overwrite" if overwrite else "errorifexists").parquet(output)
        return
    with atomic_path(output, overwrite) as staged:
        frame.write.parquet(str(staged))


def train(*, master: str | None, conf: tuple[str, ...], inputs: tuple[str, ...], output: str,
          update_path: str | None, window: str, window_packets: int | None, variant: str,
          context: str, context_below: int, truth: str | None, expert_oracle: bool,
          expert_budget: int | None, rules_path: str | None, store_path: str, telescope: str,
          seed: int, overwrite: bool, as_json: bool) -> None:
    """``backscatter train --engine spark``: features, judged vectors and rules on the
    cluster; the model fitted on the driver (:mod:`.train`) and saved there."""
    from darkscope.backscatter import persist
    from darkscope.backscatter.cli import feature_definition, oracle_truth, report_trained
    from darkscope.backscatter.rules import load_rules
    from darkscope.backscatter.training import TrainingStep, fit_steps
    from darkscope.engines.spark import packets
    from darkscope.engines.spark.train import training_steps
    from darkscope.store import ReviewStore

    if "://" in output:
        raise UsageError(f"{output}: the model is written by the driver: give a local "
                         "directory")
    truth_table = oracle_truth(truth, expert_oracle)
    ruleset = load_rules(rules_path)
    base = persist.load(update_path) if update_path else None
    definition = base.definition if base is not None else feature_definition(
        window, window_packets, variant, context, context_below)
    spark, paths = _start(master, conf, inputs, (output,), overwrite, any_format=True)
    started = time.perf_counter()
    rows = packets.detector_rows(packets.read(spark, paths, positions=True))
    scope = packets.resolve(rows, telescope)
    sent: list[int] = []   # packets per step

    def counted() -> Iterator[TrainingStep]:
        for step in training_steps(rows, definition, ruleset, scope):
            sent.append(int(step.windows.packets.sum()))
            yield step

    with ReviewStore(store_path) as store:
        saved, report = fit_steps(counted(), ruleset, base=base, store=store, truth=truth_table,
                                  expert_budget=expert_budget, seed=seed)
    report.seconds = time.perf_counter() - started
    persist.save(saved, output, overwrite=overwrite)
    report_trained(saved, report, str(scope), sum(sent), output, as_json)


def detect(*, master: str | None, conf: tuple[str, ...], inputs: tuple[str, ...],
           model_path: str, output: str, victims_path: str | None, truth: str | None,
           expert_oracle: bool, expert_budget: int | None, rules_path: str | None,
           store_path: str, no_store: bool, telescope: str, fmt: str | None,
           overwrite: bool) -> None:
    """``backscatter detect --engine spark``."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from darkscope.backscatter import persist
    from darkscope.backscatter.rules import load_rules
    from darkscope.engines.spark import packets
    from darkscope.engines.spark.detect import decide, queue_reviews, verdict_table
    from darkscope.engines.spark.victims import victims
    from darkscope.store import ReviewStore

    _refuse(truth=truth, expert_oracle=expert_oracle, expert_budget=expert_budget)
    saved = persist.load(model_path)
    rules = load_rules(rules_path)
    spark, paths = _start(master, conf, inputs, (output, victims_path), overwrite, fmt)
    started = time.perf_counter()
    rows = packets.detector_rows(packets.read(spark, paths))
    scope = packets.resolve(rows, telescope)
    with nullcontext() if no_store else ReviewStore(store_path) as store:
        labels = store.labels() if store is not None else None
        decided = decide(spark, rows, saved, rules, scope, labels).persist(
            StorageLevel.MEMORY_AND_DISK)
        write_parquet(verdict_table(decided), output, overwrite)
        queued = queue_reviews(decided, store, saved.definition) if store is not None else 0
        counts = {r["verdict"]: (r["windows"], r["packets"]) for r in decided.groupBy(
            "verdict").agg(F.count(F.lit(1)).alias("windows"),
                           F.sum("packets").alias("packets")).collect()}
        unqueued6 = decided.where((F.col("verdict") == "needs_review")
                                  & F.col("src6").isNotNull()).count()
        if victims_path:
            attacks = victims(rows, decided, scope, saved.definition.window_s).drop(
                "start_ns", "end_ns").persist(StorageLevel.MEMORY_AND_DISK)
            write_parquet(attacks, victims_path, overwrite)
            found = attacks.agg(F.count(F.lit(1)).alias("attacks"),
                                F.countDistinct("victim").alias("victims")).first()
            attacks.unpersist()
        decided.unpersist()
    seconds = time.perf_counter() - started
    windows = sum(w for w, _ in counts.values())
    total = sum(p for _, p in counts.values())
    click.echo(f"{windows:,} host-windows ({total:,} packets) in {seconds:.2f} s on Spark "
               f"({spark.sparkContext.master}), telescope {scope}: "
               + ", ".join(f"{counts.get(v, (0, 0))[0]:,} {v}"
                           for v in ("ddos", "not_ddos", "needs_review"))
               + f" ({queued:,} queued in {'no store' if no_store else store_path}) -> {output}")
    if victims_path:
        click.echo(f"{found['attacks']:,} attacks on {found['victims']:,} victims -> "
                   f"{victims_path}")
    if unqueued6:
        click.echo(f"warning: {unqueued6:,} IPv6 host-window(s) need review but were not "
                   "queued (the review store keys hosts by IPv4 address); find them in "
                   f"{output} where verdict = 'needs_review' and src6 is set", err=True)


def rules_mine(*, master: str | None, conf: tuple[str, ...], inputs: tuple[str, ...],
               output: str, period: str, min_hosts: int | None, min_support: float | None,
               min_confidence: float, min_lift: float, max_len: int, items: str | None,
               catalogue: str | None, min_share: float, max_values: int, sweep_values: int,
               threshold: float, counter: str, all_rules: bool, top: int, fmt: str | None,
               overwrite: bool) -> None:
    """``rules mine --engine spark``: periods mined in parallel; the rules table (small) is
    written by the driver in the format asked for, as the local engine writes it."""
    from darkscope.engines.spark.patterns import mine
    from darkscope.io import write_table
    from darkscope.patterns.cli import csv_ready, mine_settings, report_mined
    from darkscope.patterns.pipeline import check_summary

    settings, chosen = mine_settings(period, min_hosts, min_support, min_confidence, min_lift,
                                     max_len, items, catalogue, min_share, max_values,
                                     sweep_values, threshold, counter, all_rules)
    spark, paths = _start(master, conf, inputs, (output,), overwrite, any_format=True)
    started = time.perf_counter()
    table, summary = mine(spark.read.parquet(*paths), settings, chosen)
    summary.seconds = time.perf_counter() - started
    check_summary(summary, settings)
    write_table(csv_ready(table, output, fmt), output, fmt, overwrite=overwrite)
    report_mined(table, summary, output, top)


def rules_timeline(*, master: str | None, conf: tuple[str, ...], rules_tables: tuple[str, ...],
                   output: str, png: str | None, table: str | None, events: tuple[str, ...],
                   scenario: str | None, match: str | None, top: int, overwrite: bool) -> None:
    """``rules timeline --engine spark``: the rules tables read where they lie (Parquet on
    HDFS or S3: ``rules mine -o`` files or Spark-written directories); they are small, so
    the driver follows them and writes the page as the local engine does."""
    import pyarrow as pa

    from darkscope.patterns.cli import check_timeline_outputs, write_timeline
    from darkscope.patterns.timeline import check_rules

    for path in (output, png, table):
        if path and "://" in path:
            raise UsageError(f"{path}: the timeline is written by the driver: give a local "
                             "path")
    check_timeline_outputs(output, png, table, overwrite)
    for given in rules_tables:
        _must_exist(given, f"rules table {given}")
    from darkscope.engines.spark.session import parse_conf, session

    spark = session(master, parse_conf(conf))
    rules = check_rules(spark.read.parquet(*rules_tables).toArrow(), ", ".join(rules_tables))
    # Spark reads Parquet's nanosecond timestamps as the long they are (session settings)
    at = rules.schema.get_field_index("period_start")
    if pa.types.is_integer(rules.schema.field(at).type):
        rules = rules.set_column(at, "period_start",
                                 rules["period_start"].cast(pa.timestamp("ns", tz="UTC")))
    write_timeline(rules, output, png, table, events, scenario, match, top, overwrite)


def hosts_attribute(*, master: str | None, conf: tuple[str, ...], inputs: tuple[str, ...],
                    output: str, period: str, threshold: float, fmt: str | None,
                    overwrite: bool) -> None:
    """``hosts attribute --engine spark``: a row per host and period, written by the
    executors as a Parquet directory."""
    from pyspark import StorageLevel

    from darkscope.engines.spark.patterns import attribute
    from darkscope.errors import DarkscopeError
    from darkscope.patterns.cli import report_attributed
    from darkscope.patterns.pipeline import parse_period

    if not 0 <= threshold < 1:
        raise UsageError(f"attribution threshold must be within 0..1 (exclusive), got "
                         f"{threshold}")
    spark, paths = _start(master, conf, inputs, (output,), overwrite, fmt)
    hosts = attribute(spark.read.parquet(*paths), parse_period(period), threshold).persist(
        StorageLevel.MEMORY_AND_DISK)
    counts = {r["family"]: r["count"] for r in hosts.groupBy("family").count().collect()}
    if not counts:
        hosts.unpersist()
        raise DarkscopeError("the input has no IPv4 packets with timestamps: no host to "
                             "attribute")
    write_parquet(hosts, output, overwrite)
    hosts.unpersist()
    report_attributed(counts, output)


def _ns(column: str, frame: Any) -> Any:
    """A time column as nanoseconds: a Spark timestamp (microseconds) or already a long."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import LongType

    if isinstance(frame.schema[column].dataType, LongType):
        return F.col(column)
    return F.unix_micros(F.col(column)) * 1000


def victims(*, master: str | None, conf: tuple[str, ...], verdicts_path: str,
            inputs: tuple[str, ...], output: str, telescope: str, gap: float,
            fmt: str | None, overwrite: bool) -> None:
    """``backscatter victims --engine spark``: the attacks in a verdicts table (the local
    engine's file or a Spark-written directory) and its packets."""
    from pyspark.sql import functions as F

    from darkscope.backscatter.features import NS
    from darkscope.engines.spark import packets
    from darkscope.engines.spark.victims import victims as find_victims

    spark, paths = _start(master, conf, inputs, (output,), overwrite, fmt)
    verdicts = spark.read.parquet(verdicts_path)
    missing = {"src", "window_start", "window_end", "verdict"} - set(verdicts.columns)
    if missing:
        raise UsageError(f"{verdicts_path}: verdicts lack column(s) "
                         f"{', '.join(sorted(missing))}")
    verdicts = verdicts.select("src", "verdict", _ns("window_start", verdicts).alias(
        "window_start"), _ns("window_end", verdicts).alias("window_end"))
    spans = [r["span"] for r in verdicts.select(
        (F.col("window_end") - F.col("window_start")).alias("span")).distinct().limit(2)
        .collect()]
    if len(spans) != 1 or spans[0] % NS:
        raise UsageError(f"{verdicts_path}: --engine spark finds attacks in time windows of "
                         "one length; these verdicts have windows of several (packet-count "
                         "windows?): use the local engine")
    rows = packets.detector_rows(packets.read(spark, paths))
    scope = packets.resolve(rows, telescope)
    attacks = find_victims(rows, verdicts, scope, spans[0] // NS, gap_s=gap).drop(
        "start_ns", "end_ns")
    write_parquet(attacks, output, overwrite)
    found = spark.read.parquet(output).agg(F.count(F.lit(1)).alias("attacks"),
                                           F.countDistinct("victim").alias("victims")).first()
    click.echo(f"{found['attacks']:,} attacks on {found['victims']:,} victims -> {output}")
