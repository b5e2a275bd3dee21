"""`darkscope serve`: page latency (p50/p95) over a day of /16 traffic under a bounded load of
concurrent users on loopback, against computing the same page data with pandas, in one run.

    python -u benchmarks/serve.py [--hours 24] [--users 4] [--requests 15] [--workdir DIR]
                                  [--made DIR]

Data: ``simulate --scenario mirai-2016`` for ``--hours`` from 2016-09-01 at scale 1 (the NICT /16
at the Mirai peak, about a million packets an hour), then as a user makes them: ``ingest``
(hour-partitioned packet table), ``backscatter detect --victims`` (verdicts, victims),
``hosts attribute`` (tools) and ``rules mine --period 1h`` (scanner rules). ``darkscope serve``
runs as its own process; ``--users`` clients, each logged in with its own session, ask every
page ``--requests`` times at once. Each request is made uncached on purpose where the page has
parameters: the overview for another range of whole hours each time (its summaries are
hourly), the IP page for another address (sources drawn from the verdicts), the rules page
with another filter. The feature map has none: it is computed once per data version. Before
the load, the time the summaries take to build (``web/rollups.py``) and the first overview
while they build are measured. The peer computes the same overview (hourly packets and hosts
by verdict, totals, top ports) and one IP page's verdicts and packets with pandas over the same
Parquet files, best of 2. ``--made DIR``: reuse the data and model an earlier run left in DIR
(``data/``, ``model/``) instead of making them.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path

import httpx
import pandas as pd
import pyarrow.dataset as ds

DARKSCOPE = str(Path(sys.executable).parent / "darkscope")
TELESCOPE = "198.51.0.0/16"
PASSWORD = "benchmark password"
# the rules page filtered by another item each time (uncached); the map has no parameter: it is
# computed once per data version, then cached
RULE_ITEMS = ("dport=23", "dport=2323", "tos=0", "win=", "dport=80", "->")


def run(*args: str, stdin: str | None = None) -> float:
    start = time.perf_counter()
    subprocess.run([DARKSCOPE, *args], check=True, stdout=subprocess.DEVNULL, input=stdin,
                   text=stdin is not None)
    return time.perf_counter() - start


def make_data(work: Path, hours: int) -> Path:
    data = work / "data"
    data.mkdir()
    capture = work / "day.pcap"
    train = work / "train.pcap"
    run("simulate", "--scenario", "mirai-2016", "--start", "2016-09-01T00:00Z", "--duration",
        f"{hours}h", "--seed", "1", "-o", str(capture), "--no-progress")
    run("simulate", "--scenario", "mirai-2016", "--start", "2016-08-31T00:00Z", "--duration",
        "4h", "--seed", "2", "-o", str(train), "--no-progress")
    run("backscatter", "train", str(train), "-o", str(work / "model"), "--store",
        str(work / "train.db"), "--telescope", TELESCOPE, "--no-progress")
    run("ingest", str(capture), "-o", str(data / "packets"), "--no-progress")
    run("backscatter", "detect", str(data / "packets"), "--model", str(work / "model"), "-o",
        str(data / "verdicts.parquet"), "--victims", str(data / "victims.parquet"),
        "--store", str(work / "darkscope.db"), "--telescope", TELESCOPE, "--no-progress")
    run("hosts", "attribute", str(data / "packets"), "-o", str(data / "hosts.parquet"),
        "--period", "1h", "--no-progress")
    mine_rules(data)
    capture.unlink()
    return data


def mine_rules(data: Path) -> None:
    """Scanner rules per hour of the day: the rules page's timeline."""
    run("rules", "mine", str(data / "packets"), "--period", "1h", "--min-hosts", "1000",
        "-o", str(data / "rules.parquet"), "--no-progress")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _login(url: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=120)
    client.get("/login")
    answer = client.post("/login", data={"name": "bench", "password": PASSWORD,
                                         "login_token": client.cookies.get("ds_login")})
    assert answer.status_code == 303, answer.text
    return client


def _hours(first: datetime, m: int) -> dict[str, str]:
    """The m-th distinct range of whole hours: starts 0-19 h after ``first``, ending 24, 23,
    22... h after it."""
    start, end = first + timedelta(hours=m % 20), first + timedelta(hours=24 - m // 20)
    return {"start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": end.strftime("%Y-%m-%dT%H:%M:%SZ")}


def load(url: str, users: int, requests: int, start: datetime,
         hosts: list[str]) -> dict[str, list[float]]:
    """Every user asks every page ``requests`` times, all users at once; seconds per request."""
    times: dict[str, list[float]] = {}
    lock = threading.Lock()
    counter = iter(range(10**9))

    def user() -> None:
        client = _login(url)
        for _ in range(requests):
            n = next(counter)
            page_at, api_at = (_hours(start, 2 * n + k) for k in (0, 1))
            # page and API apart: neither answers from the other's cache
            for page, path, params in (("overview", "/", page_at),
                                       ("overview API", "/api/v1/overview", api_at),
                                       ("ip", f"/ip/{hosts[n % len(hosts)]}", {}),
                                       ("review", "/review", {}),
                                       ("rules", "/rules", {"match": RULE_ITEMS[n % 6]}),
                                       ("map", "/map", {}),
                                       ("attacks", "/attacks", {"port": n % 1024})):
                began = time.perf_counter()
                answer = client.get(path, params=params)
                elapsed = time.perf_counter() - began
                assert answer.status_code == 200, (path, answer.status_code)
                with lock:
                    times.setdefault(page, []).append(elapsed)
        client.close()

    threads = [threading.Thread(target=user) for _ in range(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return times


def pandas_overview(data: Path) -> float:
    start = time.perf_counter()
    verdicts = pd.read_parquet(data / "verdicts.parquet",
                               columns=["src", "window_start", "verdict", "packets"])
    verdicts["hour"] = verdicts["window_start"].dt.floor("h")
    verdicts.groupby(["hour", "verdict"]).agg(packets=("packets", "sum"),
                                              hosts=("src", "nunique"))
    verdicts.groupby("verdict").agg(windows=("src", "size"), packets=("packets", "sum"))
    packets = ds.dataset(data / "packets", format="parquet", partitioning="hive").to_table(
        columns=["proto", "dport", "src"]).to_pandas()
    packets.groupby(["proto", "dport"]).agg(packets=("src", "size"), hosts=("src", "nunique")
                                            ).nlargest(10, "packets")
    return time.perf_counter() - start


def pandas_ip(data: Path, host: int) -> float:
    start = time.perf_counter()
    verdicts = pd.read_parquet(data / "verdicts.parquet", filters=[("src", "==", host)])
    verdicts.sort_values("window_start")
    packets = ds.dataset(data / "packets", format="parquet", partitioning="hive").to_table(
        filter=ds.field("src") == host).to_pandas()
    packets.sort_values("ts").head(50)
    packets.groupby(["proto", "dport"]).size().nlargest(10)
    (packets["dst"] // 256).value_counts().head(10)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--requests", type=int, default=15)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--made", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        if args.made:
            data, model = args.made / "data", args.made / "model"
            if not (data / "rules.parquet").exists():
                mine_rules(data)
        else:
            data, model = make_data(work, args.hours), work / "model"
        packets = ds.dataset(data / "packets", format="parquet", partitioning="hive")
        verdicts = ds.dataset(data / "verdicts.parquet")
        print(f"data: {args.hours} h of mirai-2016 at scale 1: {packets.count_rows():,} packets, "
              f"{verdicts.count_rows():,} host-windows, "
              f"{ds.dataset(data / 'victims.parquet').count_rows():,} attacks")
        store = work / "darkscope.db"
        run("users", "add", "bench", "--role", "expert", "--password-stdin", "--store",
            str(store), stdin=PASSWORD + "\n")
        sources = verdicts.to_table(columns=["src"])["src"].to_numpy()
        rng = random.Random(1)
        hosts = [str(IPv4Address(int(s))) for s in rng.sample(list(sources), 400)]
        port = _port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([DARKSCOPE, "serve", "--data", str(data), "--store",
                                   str(store), "--model", str(model), "--port",
                                   str(port)])
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    httpx.get(url + "/login", timeout=2)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline and server.poll() is None
                    time.sleep(0.2)
            first = _login(url)
            began = time.perf_counter()
            first.get("/")
            cold_start = time.perf_counter() - began
            overview = first.get("/api/v1/overview").json()
            start = datetime.fromisoformat(overview["range"]["start"].replace("Z", "+00:00"))
            while first.get("/api/v1/catalog").json()["summaries"]["pending"]:
                time.sleep(0.5)
            built = time.perf_counter() - began
            summaries = first.get("/api/v1/catalog").json()["summaries"]
            first.close()
            size = Path(summaries["path"]).stat().st_size
            print(f"first overview after start, while the summaries build: {cold_start:.2f} s")
            print(f"summaries of {summaries['files']} files built {built:.1f} s after start, "
                  f"{size / 1e6:.0f} MB")
            times = load(url, args.users, args.requests, start.astimezone(UTC), hosts)
        finally:
            server.terminate()
            server.wait(timeout=30)
        print(f"{args.users} concurrent users, {args.requests} uncached requests each per page:")
        print(f"{'page':<14}{'requests':>9}{'p50 s':>8}{'p95 s':>8}{'max s':>8}")
        for page, values in times.items():
            values.sort()
            p95 = values[min(len(values) - 1, int(0.95 * len(values)))]
            print(f"{page:<14}{len(values):>9}{statistics.median(values):>8.3f}{p95:>8.3f}"
                  f"{values[-1]:>8.3f}")
        peer_overview = min(pandas_overview(data) for _ in range(2))
        sample = int(IPv4Address(hosts[0]))
        peer_ip = min(pandas_ip(data, sample) for _ in range(2))
        ours_overview = statistics.median(times["overview API"])
        ours_ip = statistics.median(times["ip"])
        print(f"pandas, the overview's data: {peer_overview:.2f} s -> the dashboard's page "
              f"(p50, under load) is {peer_overview / ours_overview:.1f}x faster")
        print(f"pandas, one IP page's data: {peer_ip:.2f} s -> the dashboard's page "
              f"(p50, under load) is {peer_ip / ours_ip:.1f}x faster")
        print(json.dumps({"overview_p50": ours_overview, "ip_p50": ours_ip}))
        if not args.made:
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
