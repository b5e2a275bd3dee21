"""``darkscope monitor``: 24/7 detection on rotating captures or a live interface."""

from __future__ import annotations

import json
from pathlib import Path

import click

from darkscope.clikit import common
from darkscope.errors import UsageError

_INTERVAL_HELP = ("Seconds per interval (aligned to the epoch, as corsaro's): packets are "
                  "written and active hosts judged provisionally once per interval of packet "
                  "time. Must divide the model's detection span.")


@click.command(name="monitor")
@click.option("--watch", "watch", type=click.Path(file_okay=False),
              help="Directory of captures to follow (rotating pcap/pcapng, also compressed).")
@click.option("--interface", default=None,
              help="Capture live from this network interface instead (AF_PACKET ring; "
                   "needs root or CAP_NET_RAW).")
@click.option("--filter", "bpf_filter", default=None,
              help="With --interface: a BPF filter in tcpdump syntax, run in the kernel "
                   "(e.g. 'not port 22').")
@click.option("--model", "model_path", type=click.Path(file_okay=False),
              help="Backscatter model directory (darkscope backscatter train).")
@click.option("-o", "--output", type=click.Path(file_okay=False), required=True,
              help="Output directory: packet, verdict and victim tables, alerts.jsonl, "
                   "status.json and the checkpoint. An existing one is resumed.")
@click.option("--telescope", default=None,
              help="The telescope's networks: 198.51.0.0/16, 2001:db8:ab::/48, or both "
                   "comma-separated (required: a monitor must know it from the start).")
@click.option("--store", "store_path", envvar="DARKSCOPE_STORE", default="darkscope.db",
              show_default=True, type=click.Path(dir_okay=False),
              help="Review store: expert labels are applied, uncertain hosts queued.")
@click.option("--no-store", is_flag=True, help="Neither read labels nor queue reviews.")
@click.option("--rules", "rules_path", metavar="FILE|minimal",
              help="Rules file (TOML) instead of the built-in rules, or `minimal`.")
@click.option("--interval", "interval_s", type=click.IntRange(1), default=60,
              show_default=True, help=_INTERVAL_HELP)
@click.option("--poll", "poll_s", type=click.FloatRange(0.01), default=1.0, show_default=True,
              help="Seconds between looks at the directory when nothing new arrived.")
@click.option("--settle", "settle_s", type=click.FloatRange(0), default=30.0,
              show_default=True,
              help="A compressed capture is read once a newer capture exists or it has not "
                   "changed for this many seconds.")
@click.option("--once", is_flag=True,
              help="Exit once everything in the directory is read (for cron and tests).")
@click.option("--finish", is_flag=True,
              help="With --once: the captures are complete, so judge the open span too, as "
                   "backscatter detect would.")
@click.option("--learn/--no-learn", default=True, show_default=True,
              help="Learn expert labels arriving in the store while running (a new model "
                   "version at the next poll).")
@click.option("--self-train", is_flag=True,
              help="Also learn each span's rule-labelled windows and confident verdicts "
                   "(held back while a drift is unconfirmed).")
@click.option("--confirm-drift", is_flag=True,
              help="Tell the monitor writing to -o that an expert has looked at the reported "
                   "drift: self-training resumes.")
@click.option("--scanners/--no-scanners", default=True, show_default=True,
              help="Attribute each interval's hosts to Mirai/ZMap/Masscan and mine each "
                   "day's fingerprint rules (OUT/hosts, OUT/rules).")
@click.option("--scanner-min-hosts", type=click.IntRange(1), default=1000, show_default=True,
              help="Minimum support, in hosts, of the daily rules (as rules mine --min-hosts).")
@click.option("--syslog", default=None, metavar="TARGET",
              help="Also send every alert to syslog: /dev/log, udp://HOST:PORT or "
                   "tcp://HOST:PORT (facility local0; warning for new attacks, info else).")
@click.option("--status", "show_status", is_flag=True,
              help="Print the status of the monitor writing to -o and exit.")
@click.option("--json", "as_json", is_flag=True, help="With --status: print it as JSON.")
@common
def monitor(watch: str | None, interface: str | None, bpf_filter: str | None,
            model_path: str | None, output: str, telescope: str | None,
            store_path: str, no_store: bool, rules_path: str | None, interval_s: int,
            poll_s: float, settle_s: float, once: bool, finish: bool, learn: bool,
            self_train: bool, scanners: bool, scanner_min_hosts: int, syslog: str | None,
            confirm_drift: bool, show_status: bool, as_json: bool) -> None:
    """Detect DDoS backscatter around the clock, on rotating captures or a live interface.

    --watch DIR: captures are read as they grow (tcpdump -G/-C, dumpcap ring buffers, hourly
    telescope files; compressed ones once finished), each packet once, across rotations and
    restarts. --interface IF: frames from an AF_PACKET ring (BPF --filter in the kernel).
    Per interval: the packet table (Parquet by date/hour) and provisional alerts for hosts
    that look like DDoS victims; per detection span: final verdicts (backscatter detect's
    columns plus model_version), victims, review items and final or retracted alerts in
    alerts.jsonl. kill -9 at any moment and start again: it resumes from its checkpoint.
    SIGTERM stops cleanly, SIGHUP reopens alerts.jsonl.
    Example: darkscope monitor --watch /var/spool/telescope --model model/ \\
    --telescope 198.51.0.0/16 -o /srv/darkscope/monitor
    """
    from darkscope.monitor.service import read_status

    out = Path(output)
    if confirm_drift:
        _confirm_drift(out)
        return
    if show_status:
        status = read_status(out)
        click.echo(json.dumps(status) if as_json else _status_text(status))
        return
    if bool(watch) == bool(interface) or not model_path:
        raise UsageError("give --watch DIR or --interface IF, and --model MODEL (or --status)")
    if bpf_filter and not interface:
        raise UsageError("--filter applies to --interface only")
    if once and interface:
        raise UsageError("--once reads a directory until it is caught up; a live interface "
                         "never is (stop it with SIGTERM)")
    if not telescope:
        raise UsageError("--telescope: name the telescope's networks, e.g. 198.51.0.0/16")
    if finish and not once:
        raise UsageError("--finish needs --once (a running monitor never knows its input "
                         "is complete)")
    watch_dir = Path(watch) if watch else None
    if watch_dir is not None:
        if not watch_dir.is_dir():
            raise UsageError(f"--watch {watch}: no such directory")
        if out.resolve().is_relative_to(watch_dir.resolve()):
            raise UsageError(f"-o {output} is inside --watch {watch}; the monitor would read "
                             "its own outputs")
    if not out.parent.exists():
        raise UsageError(f"output directory {out.parent} does not exist")
    _run(watch_dir, interface, bpf_filter, Path(model_path), out, telescope,
         None if no_store else store_path, rules_path, interval_s, poll_s, settle_s, once,
         finish, learn, self_train, scanners, scanner_min_hosts, syslog)


def _confirm_drift(out: Path) -> None:
    from darkscope.monitor.learning import CONFIRM_FILE
    from darkscope.monitor.service import read_status
    from darkscope.store.review import _now, _who

    drift = read_status(out).get("learning", {}).get("drift")
    if drift is None:
        raise UsageError(f"{out}: the monitor reports no unconfirmed drift")
    (out / CONFIRM_FILE).write_text(json.dumps({"who": _who(), "at": _now()}), encoding="utf-8")
    click.echo(f"drift of {drift['detected_in_span']} confirmed; self-training resumes at the "
               "monitor's next poll")


def _run(watch: Path | None, interface: str | None, bpf_filter: str | None, model_path: Path,
         out: Path, telescope: str, store_path: str | None, rules_path: str | None,
         interval_s: int, poll_s: float, settle_s: float, once: bool, finish: bool,
         learn: bool, self_train: bool, scanners: bool, scanner_min_hosts: int,
         syslog: str | None) -> None:
    from contextlib import nullcontext

    from darkscope.backscatter import persist
    from darkscope.backscatter.rules import load_rules
    from darkscope.backscatter.telescope import parse_telescope
    from darkscope.monitor.service import Monitor, Settings
    from darkscope.store import ReviewStore

    scope = parse_telescope(telescope)
    saved = persist.load(model_path)
    if saved.definition.chunk_s is None:
        raise UsageError(f"{model_path}: the model counts windows in packets; the monitor "
                         "needs time windows (train with --window)")
    span = saved.definition.chunk_s
    if span % interval_s and interval_s % span:
        raise UsageError(f"--interval {interval_s} does not divide the model's {span} s "
                         "detection span")
    rules = load_rules(rules_path)
    settings = Settings(watch, interface, out, model_path, scope, bpf_filter, interval_s, poll_s,
                        settle_s, once, finish, learn, self_train, scanners, scanner_min_hosts,
                        syslog)
    with nullcontext() if store_path is None else ReviewStore(store_path) as store:
        service = Monitor(settings, rules, store)
        status = service.run()
    click.echo(_status_text(status), err=True)


def _status_text(status: dict) -> str:
    lag = status.get("lag_s")
    lines = [
        f"{status['state']} (pid {status['pid']}, updated {status['updated_at']}): "
        f"{status['packets']:,} packets from {status['files']} file(s), "
        f"{status['packets_per_s']:,.0f} packets/s, lag "
        f"{'-' if lag is None else f'{lag:,.0f} s'}, memory {status['memory_mb']:,.0f} MB"
        + (f", kernel drops {status['drops']['kernel']:,}"
           if status["drops"].get("kernel") is not None else ""),
        f"{status['intervals']:,} intervals, {status['spans']:,} spans judged: "
        f"{status['host_windows']:,} host-windows, {status['ddos_windows']:,} ddos, "
        f"{status['queued']:,} queued for experts, {status['alerts']:,} alerts; "
        f"{status['late_packets']:,} late packets; model {status['model_version']}",
    ]
    if status.get("capture_problems"):
        lines.append(f"capture problems ({status['skipped_records']:,} records skipped): "
                     + "; ".join(status["capture_problems"][-3:]))
    return "\n".join(lines)
