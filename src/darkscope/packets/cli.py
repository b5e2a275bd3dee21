"""``darkscope ingest``: captures to the Parquet packet table."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from darkscope import progress
from darkscope.clikit import common, output_option, overwrite_option
from darkscope.errors import UsageError
from darkscope.io import check_output
from darkscope.packets.reader import DEFAULT_BATCH_ROWS, CaptureReader, ReadReport
from darkscope.packets.writer import Summary, write_packets

MAX_PROBLEMS_SHOWN = 10


def _when(ns: int | None) -> str:
    if ns is None:
        return "-"
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="microseconds")


def summary_dict(summary: Summary, report: ReadReport, output: str) -> dict[str, object]:
    return {
        "output": output,
        "files": report.files,
        "packets": summary.packets,
        "bytes": report.bytes,
        "sources": summary.sources,
        "first": _when(summary.first_ns),
        "last": _when(summary.last_ns),
        "protocols": dict(sorted(summary.protocols.items(), key=lambda kv: -kv[1])),
        "skipped_records": report.skipped_records,
        "skipped_bytes": report.skipped_bytes,
        "problems": [str(p) for p in report.problems],
    }


def print_summary(info: dict[str, object]) -> None:
    protocols = ", ".join(f"{name} {count:,}" for name, count in info["protocols"].items())
    click.echo(f"{info['packets']:,} packets from {info['sources']:,} sources in "
               f"{info['files']} file(s), {info['bytes']:,} bytes -> {info['output']}")
    click.echo(f"time: {info['first']} .. {info['last']}")
    click.echo(f"protocols: {protocols or '-'}")


def report_problems(report: ReadReport) -> None:
    if not report.problems and not report.skipped_records:
        return
    click.echo(f"darkscope: warning: skipped {report.skipped_records:,} record(s), "
               f"{report.skipped_bytes:,} byte(s) in {len(report.problems)} place(s)", err=True)
    for problem in report.problems[:MAX_PROBLEMS_SHOWN]:
        click.echo(f"darkscope: warning: {problem}", err=True)
    if len(report.problems) > MAX_PROBLEMS_SHOWN:
        click.echo(f"darkscope: warning: ... and {len(report.problems) - MAX_PROBLEMS_SHOWN} "
                   "more", err=True)


@click.command()
@click.argument("captures", nargs=-1, required=True)
@output_option(help="Parquet file (*.parquet) or directory for an hour-partitioned dataset.")
@click.option("--partition", type=click.Choice(["auto", "none", "hour"]), default="auto",
              show_default=True,
              help="auto: one file if OUTPUT ends in .parquet, else a directory by hour.")
@click.option("--on-error", type=click.Choice(["raise", "skip"]), default="raise",
              show_default=True,
              help="raise: stop at the first corrupt record; skip: keep every good packet, "
                   "resynchronise and report what was skipped.")
@click.option("--batch-rows", type=click.IntRange(1), default=DEFAULT_BATCH_ROWS,
              show_default=True, help="Rows per Parquet row group (bounds memory).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@overwrite_option
@common
def ingest(captures: tuple[str, ...], output: str, partition: str, on_error: str,
           batch_rows: int, as_json: bool, overwrite: bool) -> None:
    """Read pcap/pcapng captures (also .gz/.zst/.xz, directories, globs) into the packet table.

    One row per packet, IPv4 and IPv6, with TCP/UDP/ICMP fields, TCP options, the quoted
    header of ICMP errors and the first payload bytes; see docs/packets.md for the schema.
    Example: darkscope ingest 'telescope/2016-08-*.pcap.gz' -o packets/
    """
    check_output(output, overwrite)
    if partition == "auto":
        partition = "none" if output.endswith(".parquet") else "hour"
    if partition == "none" and Path(output).is_dir():
        raise UsageError(f"{output} is a directory; give a .parquet file name or "
                         "--partition hour")
    reader = CaptureReader(list(captures), on_error=on_error, batch_rows=batch_rows)  # type: ignore[arg-type]
    with progress.track("ingest", total=reader.total_bytes(), unit="bytes") as tracker:
        reader.tracker = tracker
        summary = write_packets(reader, output, partition=partition,  # type: ignore[arg-type]
                                overwrite=overwrite)
    info = summary_dict(summary, reader.report, output)
    report_problems(reader.report)
    if as_json:
        json.dump(info, sys.stdout)
        sys.stdout.write("\n")
    else:
        print_summary(info)
