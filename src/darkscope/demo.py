"""``darkscope demo``: the whole system end to end on built-in data, for a first look.

1. ingest the built-in real capture of a TCP reflection attack;
2. simulate an hour of a /16 telescope with ground truth;
3. learn DDoS backscatter from one simulated mix and detect it in another it never saw;
4. mine scanner fingerprint rules from two simulated days of the 2016 Mirai outbreak;
5. crawl the built-in test market through a loopback SOCKS5 proxy and find its topics;
6. train a privacy-preserving ELM across three parties, every role a process.

Each step prints what it found and where its outputs are; everything stays in the output
folder (``darkscope-demo`` in the working directory unless ``-o`` says otherwise).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections import Counter
from ipaddress import IPv4Address
from pathlib import Path

import click
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from darkscope import progress
from darkscope.clikit import common, output_option
from darkscope.data import sample_capture
from darkscope.errors import DarkscopeError
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
    _fingerprints(out)
    _dark_web(out)
    _private_learning()
    click.echo(f"== done: every output is in {out.resolve()}")


def _command(*args: str) -> None:
    """Run a darkscope subcommand as a user would, keeping this run's progress setting."""
    from darkscope.cli import main

    enabled = progress.settings.enabled
    flag = [] if enabled is None else ["--progress" if enabled else "--no-progress"]
    try:
        code = main([*args, *flag])
    finally:
        progress.settings.enabled = enabled
    if code:
        raise DarkscopeError(f"demo step `darkscope {' '.join(args)}` failed (exit {code})")


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


MIRAI_DAYS = ("2016-08-31", "2016-09-20")
MIRAI_SCALE = 0.02


def _fingerprints(out: Path) -> None:
    """Two days of the 2016 Mirai outbreak at 2% of the NICT /16's hosts; rules and timeline."""
    from darkscope.timeutil import parse_instant

    click.echo(f"== 4. scanner fingerprints: {' and '.join(MIRAI_DAYS)} of scenario "
               f"'mirai-2016' at scale {MIRAI_SCALE} (seed 5), rules with their Mirai share")
    scenario = load_scenario("mirai-2016")
    captures = []
    for day in MIRAI_DAYS:
        one_day = dataclasses.replace(scenario, start_ns=parse_instant(day),
                                      duration_ns=86400 * 10**9)
        capture = out / f"mirai-{day}.pcap"
        result = simulate(one_day, capture, scale=MIRAI_SCALE, seed=5, overwrite=True)
        click.echo(f"{day}: {result.packets:,} packets from {result.hosts:,} hosts -> {capture}")
        captures.append(str(capture))
    rules = out / "mirai-rules.parquet"
    _command("rules", "mine", *captures, "--min-hosts", str(round(1000 * MIRAI_SCALE)),
             "--top", "0", "-o", str(rules), "--overwrite")
    _print_mirai_rules(pq.read_table(rules))
    _command("rules", "timeline", str(rules), "--scenario", "mirai-2016", "-o",
             str(out / "mirai-timeline.html"), "--png", str(out / "mirai-timeline.png"),
             "--overwrite")


# What the published analysis found, as darkscope writes it: (day, published form or pattern)
PUBLISHED = [("2016-08-31", "win: {1320, 2376} -> {792}"),
             ("2016-08-31", "tos: {208, 212, 216} -> {204}"),
             ("2016-09-20", "{dport=2323} -> {dport=23}")]


def _print_mirai_rules(table: pa.Table) -> None:
    from darkscope.patterns.cli import print_top_patterns

    days = table["period_start"].cast(pa.int64()).to_numpy() // (86400 * 10**9)
    for day in np.unique(days):
        print_top_patterns(table.filter(pa.array(days == day)), 3)
    click.echo("the published Mirai rules, found again:")
    rows = table.to_pylist()
    for day, text in PUBLISHED:
        row = next((r for r in rows if f"{r['period_start']:%Y-%m-%d}" == day
                    and text in (r["published_form"], r["pattern"])), None)
        found = ("not found" if row is None else
                 f"lift {row['lift']:5.2f}  {row['support_hosts']:6,} hosts  "
                 f"Mirai {row['mirai_share']:4.0%}")
        click.echo(f"  {day}  {text:<32} {found}")


def _dark_web(out: Path) -> None:
    """Crawl the built-in test market through a loopback SOCKS5 proxy, then fit topics."""
    from darkscope.darkweb.loopback_socks import LoopbackSocks5
    from darkscope.darkweb.testmarket import SESSION_COOKIE, Market, MarketServer

    click.echo("== 5. dark web market: crawl the built-in test market (login wall, hostile "
               "pages) through a loopback SOCKS5 proxy, then LDA topics of its listings")
    crawl = out / "market-crawl"
    shutil.rmtree(crawl, ignore_errors=True)  # the demo's own output of an earlier run
    with MarketServer(Market.generate(seed=0, slow_seconds=0.5)) as market, \
            LoopbackSocks5() as proxy:
        cookies = out / "market-cookies.txt"
        cookies.write_text("# Netscape HTTP Cookie File\n"
                           f"{market.host}\tFALSE\t/\tFALSE\t0\t{SESSION_COOKIE}\t"
                           f"{market.market.token}\n")
        click.echo(f"market at {market.base}, proxy {proxy.url}, session cookie in {cookies}")
        _command("crawl", market.base + "/", "--proxy", proxy.url, "--market", "testmarket",
                 "--cookies", str(cookies), "--timeout", "2", "--retries", "1",
                 "--backoff", "0.2", "-o", str(crawl))
    listings = crawl / "listings.jsonl"
    click.echo(f"listings -> {listings}; parse errors (hostile pages) -> "
               f"{crawl / 'parse-errors.jsonl'}")
    topics = out / "market-topics"
    _command("topics", "fit", str(listings), "-k", "4", "--seed", "0", "-o", str(topics),
             "--overwrite")
    summary = json.loads((topics / "topics.json").read_text())
    for topic in summary["topics"]:
        words = ", ".join(word for word, _ in topic["words"][:6])
        click.echo(f"  topic {topic['id']} ({topic['prevalence']:.0%}): {words}")
        for product in topic["products"][:2]:
            click.echo(f"      e.g. {product.get('title', product)}")
    click.echo(f"topics, representative products and report.html -> {topics}")


def _private_learning() -> None:
    from darkscope.ppml.bench import run_bench

    click.echo("== 6. privacy-preserving ELM: 3 parties share the Glass data, BFV encryption, "
               "every role (key holder, aggregator, parties) its own process on loopback")
    report = run_bench("glass", 3, 100, poly_degree=4096)
    same = "identical" if report["identical_predictions"] else "DIFFERENT"
    click.echo(f"accuracy on held-out rows: plaintext ELM {report['accuracy_plain']:.4f}, "
               f"encrypted multi-party ELM {report['accuracy_private']:.4f} ({same} "
               f"predictions, {report['security']['security_bits']}-bit security, "
               f"{report['bytes_per_party'] / 1e6:.1f} MB sent per party, "
               f"{report['seconds_total']:.1f} s)")


@click.command()
@output_option(required=False, default="darkscope-demo", show_default=True,
               help="Directory for the demo's outputs (kept; rewritten by the next run).")
@common
def demo(output: str) -> None:
    """Run darkscope end to end on built-in data and print what it found.

    Ingest a real capture, simulate a telescope, detect DDoS backscatter, mine Mirai
    fingerprint rules, crawl a market through a SOCKS5 proxy and fit its topics, and train a
    privacy-preserving model across three parties. A few minutes on a 2-core machine.
    """
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    _run(out)
