"""``darkscope demo``: the main job end to end on built-in data, for a first look.

It ingests the built-in real capture of a TCP reflection attack, simulates an hour of a /16
telescope with ground truth, then detects DDoS backscatter in simulated traffic it never saw;
each part of the mission adds its step here as it lands.
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

_HELDOUT = Path(__file__).resolve().parent / "backscatter" / "scenarios" / "heldout.toml"


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
    _backscatter(out)
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


def _backscatter(out: Path) -> None:
    """Simulate a telescope, learn from one mix, detect DDoS backscatter in another."""
    import dataclasses

    from darkscope.backscatter import persist
    from darkscope.backscatter.evaluate import evaluate, format_report
    from darkscope.backscatter.flow import ask_oracle, decide, verdict_table
    from darkscope.backscatter.inputs import read_packets
    from darkscope.backscatter.rules import load_rules
    from darkscope.backscatter.telescope import resolve
    from darkscope.backscatter.training import train
    from darkscope.backscatter.victims import victims
    from darkscope.io import write_table

    click.echo("== 3. DDoS backscatter: train on 4 h of the simulated demo telescope (seed 2), "
               "detect in 2 h of a held-out mix (seed 1)")
    demo = load_scenario("demo")
    simulate(dataclasses.replace(demo, duration_ns=4 * 3600 * 10**9), out / "bs-train.pcap",
             truth=out / "bs-train-truth.parquet", seed=2, overwrite=True)
    simulate(load_scenario(str(_HELDOUT)), out / "bs-heldout.pcap",
             truth=out / "bs-heldout-truth.parquet",
             attacks=out / "bs-heldout-attacks.parquet", seed=1, overwrite=True)
    rules = load_rules()
    table = read_packets([out / "bs-train.pcap"])
    saved, report = train(table, rules, resolve(None, table),
                          truth=pq.read_table(out / "bs-train-truth.parquet"), expert_budget=200)
    persist.save(saved, out / "bs-model", overwrite=True)
    click.echo(f"model: {report.rule_labelled:,} windows labelled by rules, "
               f"{report.auto_labelled:,} by confident verdicts, "
               f"{report.answered_by_oracle:,} by the expert oracle")
    table = read_packets([out / "bs-heldout.pcap"])
    scope = resolve(None, table)
    decisions = decide(table, saved, rules, scope)
    verdicts = verdict_table(decisions)
    counts = Counter(verdicts["verdict"].to_pylist())
    click.echo(f"verdicts for {verdicts.num_rows:,} host-windows: {counts['ddos']:,} ddos, "
               f"{counts['not_ddos']:,} not_ddos, {counts['needs_review']:,} needs_review")
    truth = pq.read_table(out / "bs-heldout-truth.parquet")
    before = evaluate(verdicts, truth)["automatic_only"]
    ask_oracle(decisions, truth, None, None)
    verdicts = verdict_table(decisions)
    write_table(verdicts, out / "bs-verdicts.parquet")
    found = victims(table, verdicts, scope)
    write_table(found, out / "bs-victims.parquet")
    top = found.sort_by([("packets", "descending")]).slice(0, 5).to_pylist()
    click.echo(f"{found.num_rows:,} attacks seen; the largest (rate at the victim scaled by the "
               f"/{scope.network.prefixlen} telescope's share, Moore et al.):")
    for row in top:
        click.echo(f"  {IPv4Address(row['victim'])!s:>15}  ports {row['ports']:<14} "
                   f"{row['packets']:6,d} packets  ~{row['estimated_attack_pps']:,.0f} packets/s")
    click.echo(f"automatic verdicts: F1 {before['f1']:.4f} on {before['windows']:,} windows; "
               "after the experts (truth oracle) answer the review queue:")
    report = evaluate(verdicts, truth)
    click.echo("\n".join(format_report(report).splitlines()[1:4]))


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
