"""``darkscope demo``: the main job end to end on built-in data, for a first look.

It ingests the built-in real capture of a TCP reflection attack, then simulates an hour of a
/16 telescope with ground truth; each part of the mission adds its step here as it lands.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from ipaddress import IPv4Address
from pathlib import Path

import click
import pyarrow.parquet as pq

from darkscope.clikit import common, output_option
from darkscope.data import sample_capture
from darkscope.packets.cli import print_summary, summary_dict
from darkscope.packets.reader import CaptureReader
from darkscope.packets.writer import write_packets
from darkscope.simulate import load_scenario, simulate


def _run(out: Path) -> None:
    capture = sample_capture()
    click.echo(f"== 1. ingest: {capture.name} (real TCP reflection attack, StopDDoS collection)")
    reader = CaptureReader(capture)
    table_path = out / "packets.parquet"
    summary = write_packets(reader, table_path, overwrite=True)
    print_summary(summary_dict(summary, reader.report, str(table_path)))
    table = pq.read_table(table_path, columns=["src", "sport", "tcp_flags"]).to_pydict()
    replies = Counter(
        (src, sport) for src, sport, flags in zip(table["src"], table["sport"],
                                                  table["tcp_flags"], strict=True)
        if flags is not None and flags & 0x12 == 0x12)
    click.echo("top SYN-ACK senders (reflectors answering spoofed SYNs):")
    for (src, sport), count in replies.most_common(5):
        click.echo(f"  {IPv4Address(src)!s:>15}:{sport:<5} {count:4d} SYN-ACK")
    _simulated(out)
    click.echo(f"outputs in {out}")


def _simulated(out: Path) -> None:
    click.echo("== 2. simulate: one hour of a /16 telescope (scenario 'demo', seed 1)")
    capture, truth = out / "telescope.pcap", out / "truth.parquet"
    result = simulate(load_scenario("demo"), capture, truth=truth, seed=1, overwrite=True)
    click.echo(f"{result.packets:,} packets from {result.hosts:,} hosts -> {capture}")
    kinds = pq.read_table(truth, columns=["kind", "packets"]).group_by("kind").aggregate(
        [("packets", "sum"), ("kind", "count")]).sort_by([("packets_sum", "descending")])
    for row in kinds.to_pylist():
        click.echo(f"  {row['kind']:<12} {row['kind_count']:6,} hosts {row['packets_sum']:9,} "
                   "packets")


@click.command()
@output_option(required=False, help="Directory for the demo's outputs (default: temporary).")
@common
def demo(output: str | None) -> None:
    """Run darkscope end to end on built-in data and print what it found."""
    if output:
        out = Path(output)
        out.mkdir(parents=True, exist_ok=True)
        _run(out)
        return
    with tempfile.TemporaryDirectory(prefix="darkscope-demo-") as tmp:
        _run(Path(tmp))
