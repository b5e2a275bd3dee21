"""``darkscope simulate``: write a darknet capture with ground truth."""

from __future__ import annotations

import dataclasses
import ipaddress

import click

from darkscope import progress
from darkscope.clikit import common, output_option, overwrite_option, seed_option
from darkscope.errors import UsageError
from darkscope.simulate.engine import simulate as run_simulation
from darkscope.simulate.scenario import BUILT_IN, load_scenario
from darkscope.timeutil import iso, parse_duration, parse_instant


def _print_scenario(ctx: click.Context, _param: click.Parameter, name: str | None) -> None:
    if name is None or ctx.resilient_parsing:
        return
    from darkscope.simulate.scenario import scenario_text

    click.echo(scenario_text(name), nl=False)
    ctx.exit(0)


@click.command()
@click.option("--print-scenario", metavar="NAME", callback=_print_scenario, expose_value=False,
              is_eager=True, help=f"Print a built-in scenario's TOML ({', '.join(BUILT_IN)}) "
                                  "and exit: the start of a custom one (then --scenario FILE).")
@click.option("--scenario", default="demo", show_default=True,
              help=f"Scenario TOML file, or a built-in one: {', '.join(BUILT_IN)}.")
@click.option("--prefix", help="Telescope prefix, e.g. 198.51.0.0/16 (default: the scenario's).")
@click.option("--start", help="Start time, e.g. 2016-08-06T00:00Z (default: the scenario's).")
@click.option("--duration", help="Length, e.g. 30m, 1h, 3d (default: the scenario's).")
@click.option("--scale", type=float, default=1.0, show_default=True,
              help="Multiply host and attack counts (per-host rates stay).")
@seed_option
@output_option(help="The capture to write (pcap, nanosecond timestamps).")
@click.option("--table", type=click.Path(), help="Also write the packet table (Parquet).")
@click.option("--truth", type=click.Path(), help="Ground truth, one row per source host.")
@click.option("--attacks", type=click.Path(), help="Ground truth, one row per DDoS attack.")
@overwrite_option
@common
def simulate(scenario: str, prefix: str | None, start: str | None, duration: str | None,
             scale: float, seed: int, output: str, table: str | None, truth: str | None,
             attacks: str | None, overwrite: bool) -> None:
    """Simulate what a network telescope receives, with ground truth.

    Mirai and variants, ZMap, Masscan, Nmap, generic scanners, DDoS backscatter, misconfigured
    hosts and BitTorrent, each with its packet-level fingerprint; docs/simulate.md describes
    the models and their sources. Same seed, same bytes.
    Example: darkscope simulate --scenario mirai-2016 --scale 0.001 --duration 3d -o m.pcap
    --truth truth.parquet
    """
    spec = load_scenario(scenario)
    changes: dict[str, object] = {}
    try:
        if prefix:
            changes["prefix"] = ipaddress.IPv4Network(prefix)
        if start:
            changes["start_ns"] = parse_instant(start)
        if duration:
            changes["duration_ns"] = parse_duration(duration)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    spec = dataclasses.replace(spec, **changes)
    with progress.track("simulate", total=spec.duration_ns) as tracker:
        result = run_simulation(spec, output, truth=truth, attacks=attacks, table=table,
                                seed=seed, scale=scale, overwrite=overwrite, tracker=tracker)
    rate = result.packets / result.seconds if result.seconds else 0.0
    click.echo(f"{result.packets:,} packets from {result.hosts:,} hosts "
               f"({result.attacks:,} attacks) {iso(spec.start_ns)} .. {iso(spec.end_ns)} "
               f"-> {output} in {result.seconds:.1f} s ({rate:,.0f} packets/s)")
