"""`darkscope serve`: page latency (p50/p95) over a day of /16 traffic under a bounded load of
concurrent users on loopback, against computing the same page data with pandas, in one run.

    python -u benchmarks/serve.py [--hours 24] [--users 4] [--requests 15] [--workdir DIR]

Data: ``simulate --scenario mirai-2016`` for ``--hours`` from 2016-09-01 at scale 1 (the NICT /16
at the Mirai peak, about a million packets an hour), then as a user makes them: ``ingest``
(hour-partitioned packet table), ``backscatter detect --victims`` (verdicts, victims) and
``hosts attribute`` (tools). ``darkscope serve`` runs as its own process; ``--users`` clients,
each logged in with its own session, ask every page ``--requests`` times at once. Each request
is made uncached on purpose: the overview with a start time one second later each time, the IP
page for another address each time (sources drawn from the verdicts). The peer computes the
same overview (hourly packets and hosts by verdict, totals, top ports) and one IP page's
verdicts and packets with pandas over the same Parquet files, best of 2.
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
    capture.unlink()
    return data


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
            page_at, api_at = (
                (start + timedelta(seconds=2 * n + k)).strftime("%Y-%m-%dT%H:%M:%SZ")
                for k in (0, 1))  # page and API apart: neither answers from the other's cache
            for page, path, params in (("overview", "/", {"start": page_at}),
                                       ("overview API", "/api/v1/overview", {"start": api_at}),
                                       ("ip", f"/ip/{hosts[n % len(hosts)]}", {}),
                                       ("review", "/review", {}),
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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        data = make_data(work, args.hours)
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
                                   str(store), "--model", str(work / "model"), "--port",
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
            first.close()
            print(f"first overview after start (catalog, views): {cold_start:.2f} s")
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
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
