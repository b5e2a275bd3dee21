"""``darkscope export``: findings as STIX 2.1 bundles, MISP feeds and blocklists."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import click

from darkscope.clikit import common, output_option

_INPUTS = click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True))


def _options(func):
    for option in reversed([
        output_option(help="Output file."),
        click.option("--allowlist", "allowlists", multiple=True, type=click.Path(exists=True),
                     help="More known scanners to leave out (TOML, as the built-in "
                          "research_scanners.toml); repeatable."),
        click.option("--default-allowlist/--no-default-allowlist", default=True,
                     show_default=True, help="Leave out the built-in research scanners "
                                             "(Censys, Shadowserver)."),
        click.option("--confirmed-only", is_flag=True,
                     help="Only sources a labelling rule, an expert or a tool fingerprint "
                          "decided (not the model alone)."),
        click.option("--overwrite", is_flag=True, help="Replace the output if it exists."),
    ]):
        func = option(func)
    return func


@click.group(name="export")
def export() -> None:
    """Share findings: STIX 2.1 bundles, MISP feeds and blocklists of scanning sources.

    INPUTS are verdicts (backscatter detect), victims (backscatter victims), hosts (hosts
    attribute) and rules (rules mine) tables, or directories searched for them by schema,
    such as a monitor's output. Known research scanners are left out first. Nothing from
    PP-ELM is read, and nothing from dark web crawls unless `export stix --dark-web` asks.
    Examples:

    \b
    darkscope export stix monitor-out/ -o findings.stix.json --victims prefix24
    darkscope export misp monitor-out/ -o feed/ --operator "Example CERT"
    darkscope export csv monitor-out/ -o blocklist.csv --confirmed-only
    """


def _load(inputs, allowlists, default_allowlist: bool, confirmed_only: bool,
          per_day: bool = False, dark_web: bool = False):
    from darkscope.intel.allowlist import Allowlist
    from darkscope.intel.findings import load

    findings = load(inputs, per_day=per_day, dark_web=dark_web)
    kept, dropped = Allowlist.load(list(allowlists), default=default_allowlist).leave_out(
        findings.sources)
    if confirmed_only:
        kept = [source for source in kept if source.confirmed]
    for name in findings.skipped:
        click.echo(f"skipped {name}: not a verdicts, victims, hosts or rules table"
                   + (" nor topics" if dark_web else ""), err=True)
    if dropped:
        click.echo("left out known scanners: " + ", ".join(
            f"{n} {name}" for name, n in sorted(dropped.items())), err=True)
    return replace(findings, sources=kept)


@export.command("stix")
@_INPUTS
@_options
@click.option("--victims", type=click.Choice(["full", "prefix24", "none"]), default="full",
              show_default=True, help="DDoS victims as full addresses, truncated to their "
                                      "/24, or left out.")
@click.option("--operator", default="darkscope telescope", show_default=True,
              help="Name of the identity that sighted everything (your organisation).")
@click.option("--decay-days", type=click.IntRange(min=1), default=7, show_default=True,
              help="Indicators stay valid this long after a source's last window.")
@click.option("--expert-notes", is_flag=True,
              help="Also share the experts' labels (as opinions) and notes from --store; "
                   "who labelled is never exported.")
@click.option("--store", "store_path", envvar="DARKSCOPE_STORE", default="darkscope.db",
              show_default=True, type=click.Path(dir_okay=False),
              help="Review store holding the experts' labels (with --expert-notes).")
@click.option("--dark-web", is_flag=True,
              help="Also share the topics of dark web markets (topics fit's topics.json "
                   "among INPUTS) as a report with a note per topic: words, products, "
                   "trends.")
@common
def stix(inputs, output, allowlists, default_allowlist, confirmed_only, overwrite, victims,
         operator, decay_days, expert_notes, store_path, dark_web) -> None:
    """A STIX 2.1 bundle: identity, addresses, infrastructure, sightings, indicators of
    confirmed sources and of scanner fingerprint rules, Mirai/ZMap/Masscan, victims as
    observed-data, and (asked for) the experts' opinions and notes and dark web topics."""
    from darkscope.intel.findings import expert_labels
    from darkscope.intel.stix import bundle, rule_pattern
    from darkscope.io import atomic_path, check_output

    check_output(output, overwrite)
    findings = _load(inputs, allowlists, default_allowlist, confirmed_only,
                     dark_web=dark_web)
    if victims == "none":
        findings = replace(findings, victims=[])
    if expert_notes:
        findings = replace(findings, labels=expert_labels(store_path))
    made = bundle(findings, operator, timedelta(days=decay_days),
                  "prefix24" if victims == "prefix24" else "full")
    with atomic_path(output, overwrite) as tmp, tmp.open("w", encoding="utf-8") as out:
        json.dump(made, out, ensure_ascii=False, separators=(",", ":"))
        out.write("\n")
    confirmed = sum(s.confirmed for s in findings.sources)
    opinions = sum(o["type"] == "opinion" for o in made["objects"])
    unstated = sum(rule_pattern(rule) is None for rule in findings.rules)
    if unstated:
        click.echo(f"left out {unstated:,} rules with items no STIX pattern states (initial "
                   "TTL, option layout, a Masscan IP ID)", err=True)
    click.echo(f"{len(findings.sources):,} scanning sources ({confirmed:,} with indicators), "
               f"{len(findings.rules) - unstated:,} fingerprint rules, "
               f"{len(findings.victims):,} victim observations"
               + (f", {opinions:,} expert opinions" if expert_notes else "")
               + (f", {len(findings.topics):,} dark web topic models" if dark_web else "")
               + f" -> {output} ({len(made['objects']):,} STIX objects)")


@export.command("csv")
@_INPUTS
@_options
@common
def csv(inputs, output, allowlists, default_allowlist, confirmed_only, overwrite) -> None:
    """A blocklist of scanning sources: ip, first_seen, last_seen, kind, tags, confidence
    (CSV; JSON Lines when OUTPUT ends in .jsonl). Victims are never in it."""
    from darkscope.intel.blocklist import write_blocklist
    from darkscope.io import check_output, format_from_path

    check_output(output, overwrite)
    fmt = format_from_path(output)
    if fmt == "parquet":
        fmt = "csv"
    findings = _load(inputs, allowlists, default_allowlist, confirmed_only)
    write_blocklist(findings.sources, output, fmt, overwrite)
    click.echo(f"{len(findings.sources):,} scanning sources -> {output}")


@export.command("misp")
@_INPUTS
@_options
@click.option("--victims", type=click.Choice(["full", "prefix24", "none"]), default="full",
              show_default=True, help="DDoS victims as full addresses, their /24, or none.")
@click.option("--operator", default="darkscope telescope", show_default=True,
              help="The feed's organisation (Orgc) in MISP.")
@click.option("--tlp", type=click.Choice(["clear", "green", "amber", "amber+strict", "red"]),
              default="clear", show_default=True, help="TLP tag of every event.")
@common
def misp(inputs, output, allowlists, default_allowlist, confirmed_only, overwrite, victims,
         operator, tlp) -> None:
    """A static MISP feed directory (one event per day, manifest.json, hashes.csv) to add
    under MISP's Feeds: scanning sources as ip-src, attacks as ddos objects."""
    from darkscope.intel.misp import events, write_feed
    from darkscope.io import check_output

    check_output(output, overwrite)
    findings = _load(inputs, allowlists, default_allowlist, confirmed_only, per_day=True)
    if victims == "none":
        findings = replace(findings, victims=[])
    made = events(findings, operator, tlp, victims)
    write_feed(made, output, overwrite)
    click.echo(f"{len(made)} daily events ({len(findings.sources):,} source-days, "
               f"{len(findings.victims):,} attacks) -> {output}")
