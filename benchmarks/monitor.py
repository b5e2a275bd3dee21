"""`darkscope monitor`: file-path throughput against `ingest` and `ingest` + `detect`, memory
over hours of /16 traffic, and on the live path the highest replay rate without drops and the
latency from packet to alert, in one run.

    python benchmarks/monitor.py [--hours 12] [--workdir DIR] [--no-live]

File path: ``simulate --scenario mirai-2016`` for ``--hours`` hours from 2016-09-01 (the Mirai
peak; about a million packets an hour at scale 1, what the NICT /16 saw), then each command as
a user runs it, a new process each, best of 2: ``darkscope ingest`` to an hour-partitioned
dataset (the goal's peer), ``darkscope backscatter detect`` of the capture (the batch
alternative: ingest + detect), and ``darkscope monitor --watch --once --finish`` with and
without scanner attribution. The monitor's memory is sampled from /proc every 0.2 s while it
reads, and reported per hour of packet time: it holds one open detection span (6 h for the
default model), so it should rise within a span and fall back when the span is judged.

Live path (root, iproute2 and tcpreplay): a network namespace with a veth pair made here,
``tcpreplay`` of the first hour into one end at rising ``--pps`` steps and ``--topspeed``, the
monitor capturing the other end (1 s intervals, 10 s windows, so spans close during the run).
Each step reports kernel drops and whether every packet arrived exactly once. Latency: for
every host alerted in the slowest step, the alert's wall time minus the arrival of the host's
first packet in the alerted window, in intervals (goal: within 2).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds

from darkscope import packets
from darkscope.backscatter import persist
from darkscope.backscatter.features import FeatureDefinition
from darkscope.backscatter.inputs import read_packets
from darkscope.backscatter.rules import load_rules
from darkscope.backscatter.telescope import parse_telescope
from darkscope.backscatter.training import train

DARKSCOPE = str(Path(sys.executable).parent / "darkscope")
TELESCOPE = "198.51.0.0/16"
HOUR_NS = 3600 * 10**9


def run(*args: str) -> tuple[float, float]:
    """Seconds and peak RSS (MB, sampled every 0.1 s from /proc: a child's ru_maxrss would
    count the benchmark's own pages it was forked with) of one darkscope command."""
    start = time.perf_counter()
    proc = subprocess.Popen([DARKSCOPE, *args], stdout=subprocess.DEVNULL)
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, _rss_mb(proc.pid) or 0.0)
        time.sleep(0.1)
    if proc.returncode:
        raise SystemExit(f"darkscope {' '.join(args)} failed ({proc.returncode})")
    return time.perf_counter() - start, peak


def best_of(n: int, fn) -> tuple[float, float]:
    return min(fn() for _ in range(n))


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def monitored(args: list[str], out: Path) -> tuple[float, list[tuple[float, str | None]]]:
    """Run a monitor to its end, sampling (RSS MB, status watermark) every 0.2 s."""
    samples: list[tuple[float, str | None]] = []
    start = time.perf_counter()
    proc = subprocess.Popen([DARKSCOPE, *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    while proc.poll() is None:
        rss = _rss_mb(proc.pid)
        try:
            watermark = json.loads((out / "status.json").read_text()).get("watermark")
        except (OSError, ValueError):
            watermark = None
        if rss is not None:
            samples.append((rss, watermark))
        time.sleep(0.2)
    elapsed = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"monitor exited {proc.returncode}")
    return elapsed, samples


def memory_by_hour(samples: list[tuple[float, str | None]]) -> list[tuple[str, float]]:
    hours: dict[str, float] = {}
    for rss, watermark in samples:
        if watermark:
            hour = watermark[:13]
            hours[hour] = max(hours.get(hour, 0.0), rss)
    return sorted(hours.items())


def file_path(work: Path, hours: int, model: Path) -> None:
    spool = work / "spool"
    spool.mkdir()
    capture = spool / "telescope.pcap"
    run("simulate", "--scenario", "mirai-2016", "--start", "2016-09-01T00:00Z", "--duration",
        f"{hours}h", "--seed", "1", "-o", str(capture), "--no-progress")
    n = packets.read(capture).num_rows  # the table is dropped at once
    print(f"input: {hours} h of mirai-2016 from 2016-09-01 at scale 1: {n:,} packets, "
          f"{capture.stat().st_size / 2**20:,.0f} MiB")

    def fresh(name: str) -> Path:
        path = work / name
        shutil.rmtree(path, ignore_errors=True)
        path.unlink(missing_ok=True)
        return path

    ingest, ingest_mb = best_of(2, lambda: run("ingest", str(capture), "-o", str(fresh("packets")),
                                    "--no-progress"))
    detect, detect_mb = best_of(2, lambda: run("backscatter", "detect", str(capture), "--model",
                                    str(model), "-o", str(fresh("verdicts.parquet")),
                                    "--no-store", "--telescope", TELESCOPE, "--no-progress"))
    base = ["monitor", "--watch", str(spool), "--model", str(model), "--telescope", TELESCOPE,
            "--no-store", "--once", "--finish", "--no-progress"]
    runs = {}
    for label, extra in (("monitor --no-scanners", ["--no-scanners"]),
                         ("monitor (with scanners)", [])):
        trials = []
        for _ in range(2):
            out = fresh("out")
            trials.append(monitored([*base, *extra, "-o", str(out)], out))
        runs[label] = min(trials, key=lambda t: t[0])
    print(f"{'command':<34}{'seconds':>9}{'packets/s':>14}{'vs ingest':>11}"
          f"{'vs ingest+detect':>18}")
    pipeline = ingest + detect
    rows: list[tuple[str, float]] = [
        ("darkscope ingest", ingest), ("darkscope backscatter detect", detect),
        ("ingest + detect (batch peer)", pipeline),
        *((label, elapsed) for label, (elapsed, _) in runs.items())]
    for label, seconds in rows:
        print(f"{label:<34}{seconds:>9.2f}{n / seconds:>14,.0f}{ingest / seconds:>10.2f}x"
              f"{pipeline / seconds:>17.2f}x")
    print(f"peak RSS: ingest {ingest_mb:,.0f} MB, detect (whole capture) {detect_mb:,.0f} MB")
    hourly = ds.dataset(work / "packets", format="parquet", partitioning="hive")
    counts = hourly.to_table(columns=["hour"]).column("hour").value_counts().to_pylist()
    print("packets by hour: " + ", ".join(
        f"{c['values']}h {c['counts'] / 1e6:.2f} M" for c in sorted(counts,
                                                                   key=lambda c: c["values"])))
    for label, (_, samples) in runs.items():
        by_hour = memory_by_hour(samples)
        peaks = ", ".join(f"{hour[11:13]}h {mb:,.0f}" for hour, mb in by_hour)
        print(f"{label}: peak RSS (MB) by hour of packet time: {peaks}")


def _ns(value: str) -> int:
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1e9)


def live_step(work: Path, netns: str, capture: Path, model: Path, rate: str,
              sent: int) -> dict:
    out = work / f"live-{rate}"
    shutil.rmtree(out, ignore_errors=True)
    monitor = subprocess.Popen(
        ["ip", "netns", "exec", netns, DARKSCOPE, "monitor", "--interface", "vb", "--filter",
         "ip or ip6", "--model", str(model), "--telescope", TELESCOPE, "-o", str(out),
         "--no-store", "--no-scanners", "--interval", "1", "--poll", "0.1", "--no-progress"],
        stderr=subprocess.PIPE, text=True)
    while not (out / "status.json").exists():
        if monitor.poll() is not None:
            raise SystemExit(monitor.stderr.read() if monitor.stderr else "monitor failed")
        time.sleep(0.1)
    speed = ["--topspeed"] if rate == "topspeed" else ["--pps", rate]
    replay = subprocess.run(["ip", "netns", "exec", netns, "tcpreplay", "-i", "va", *speed,
                             str(capture)], capture_output=True, text=True, check=True)
    rated = re.search(r"Rated:.*?([\d.]+) pps", replay.stdout)
    achieved = float(rated.group(1)) if rated else float("nan")
    time.sleep(13)  # the last 10 s span closes on the clock
    monitor.send_signal(signal.SIGTERM)
    monitor.communicate(timeout=60)
    status = json.loads((out / "status.json").read_text())
    got = ds.dataset(out / "packets", format="parquet", partitioning="hive").count_rows()
    return {"rate": rate, "achieved_pps": achieved, "sent": sent, "captured": got,
            "kernel_drops": status["drops"]["kernel"], "out": out}


def latency(out: Path, interval_s: float) -> np.ndarray:
    """Seconds from a host's first packet in its alerted window to its first alert."""
    packets = ds.dataset(out / "packets", format="parquet", partitioning="hive").to_table(
        columns=["src", "ts"])
    first_alert: dict[tuple[str, str], int] = {}
    for line in (out / "alerts.jsonl").read_text().splitlines():
        alert = json.loads(line)
        if alert.get("kind") != "ddos" or alert["stage"] not in ("provisional", "final"):
            continue
        key = (alert["host"], alert["window_start"])
        first_alert.setdefault(key, _ns(alert["at"]))
    ts = packets["ts"].cast("int64").to_numpy()
    src = packets["src"].to_numpy(zero_copy_only=False)
    delays = []
    for (host, window_start), at in first_alert.items():
        if ":" in host:
            continue  # IPv6 hosts: the simulated telescope is IPv4
        start = _ns(window_start)
        a, b, c, d = (int(x) for x in host.split("."))
        mine = (src == (a << 24 | b << 16 | c << 8 | d)) & (ts >= start)
        if mine.any():
            delays.append((at - ts[mine].min()) / 1e9)
    return np.array(delays) / interval_s


def live_path(work: Path) -> None:
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("tcpreplay"):
        print("live path: skipped (needs root, iproute2 and tcpreplay)")
        return
    one_hour = work / "first-hour.pcap"
    run("simulate", "--scenario", "mirai-2016", "--start", "2016-09-01T00:00Z", "--duration",
        "1h", "--seed", "1", "-o", str(one_hour), "--no-progress")
    sent = read_packets([one_hour]).num_rows
    table = read_packets([one_hour])
    saved, _ = train(table, load_rules(), parse_telescope(TELESCOPE),
                     definition=FeatureDefinition(window_s=10, context_below=0))
    model = persist.save(saved, work / "ten-second-model")
    netns = f"dsbench{os.getpid()}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        for command in (["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"],
                        ["ip", "link", "add", "va", "type", "veth", "peer", "name", "vb"],
                        ["ip", "link", "set", "va", "up"], ["ip", "link", "set", "vb", "up"]):
            subprocess.run(["ip", "netns", "exec", netns, *command], check=True)
        print(f"live path: tcpreplay of {sent:,} packets into a veth pair (namespace {netns})")
        print(f"{'--pps':>10}{'achieved pps':>14}{'captured':>11}{'kernel drops':>14}  every "
              "packet once")
        steps = []
        for rate in ("50000", "100000", "200000", "topspeed"):
            step = live_step(work, netns, one_hour, model, rate, sent)
            steps.append(step)
            print(f"{rate:>10}{step['achieved_pps']:>14,.0f}{step['captured']:>11,}"
                  f"{step['kernel_drops']:>14,}  {step['captured'] == sent}")
        clean = [s for s in steps if s["captured"] == sent and s["kernel_drops"] == 0]
        if clean:
            top = max(clean, key=lambda s: s["achieved_pps"])
            print(f"highest rate without drops: {top['achieved_pps']:,.0f} pps ({top['rate']})")
        delays = latency(steps[0]["out"], 1.0)
        if delays.size:
            print(f"latency, packet to alert ({delays.size:,} alerted host-windows, 1 s "
                  f"intervals): p50 {np.percentile(delays, 50):.2f}, p95 "
                  f"{np.percentile(delays, 95):.2f}, max {delays.max():.2f} intervals; "
                  f"{(delays <= 2).mean():.1%} within 2")
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=12)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--live", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        train_capture = work / "train.pcap"
        run("simulate", "--scenario", "mirai-2016", "--start", "2016-08-31T00:00Z",
            "--duration", "4h", "--seed", "2", "-o", str(train_capture), "--no-progress")
        table = read_packets([train_capture])
        saved, _ = train(table, load_rules(), parse_telescope(TELESCOPE))
        model = persist.save(saved, work / "model")
        del table
        file_path(work, args.hours, model)
        if args.live:
            live_path(work)


if __name__ == "__main__":
    main()
