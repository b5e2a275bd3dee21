"""`darkscope export` and the TAXII 2.1 server, each against what a user would use instead, on
the same findings in one run.

    python -u benchmarks/intel.py [--hours 2] [--scale 1.0] [--taxii-scale 0.1]
                                  [--parts export,taxii] [--workdir DIR]

Data: ``simulate --scenario mirai-2016`` for ``--hours`` from 2016-09-01 (at ``--scale``), a
model trained on 2 h of the day before, then ``backscatter detect --victims`` and
``hosts attribute``, as a user makes them. Measured:

- ``export csv`` against the DuckDB query a user would write for the same blocklist (one row
  per scanning source with its first and last window), with the addresses compared;
- ``export stix`` against the script a user would write with pandas and the same ``stix2``
  library (per source: address, infrastructure, observed-data, sighting, relationship, and an
  indicator for rule-confirmed sources), objects counted on both sides;
- ``export misp`` on its own (PyMISP is the peer's library too);
- TAXII: ``darkscope serve`` and medallion (the OASIS TAXII 2.1 server, memory backend) on the
  same objects, read through with taxii2-client in pages of 1,000: the first page (darkscope
  builds its collections then) and a whole read. Medallion's memory backend sorts every
  request's objects against the manifest pair by pair, so its part runs on a smaller day
  (``--taxii-scale``) to finish; medallion's docs call that backend one for tests, the
  MongoDB one for use.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import ipaddress
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

DARKSCOPE = str(Path(sys.executable).parent / "darkscope")
TELESCOPE = "198.51.0.0/16"
PASSWORD = "benchmark password"


def run(*args: str, stdin: str | None = None) -> float:
    start = time.perf_counter()
    subprocess.run([DARKSCOPE, *args], check=True, stdout=subprocess.DEVNULL, input=stdin,
                   text=stdin is not None)
    return time.perf_counter() - start


def make_findings(work: Path, hours: int, scale: float) -> Path:
    data = work / "data"
    data.mkdir(parents=True)
    capture, train = work / "day.pcap", work / "train.pcap"
    run("simulate", "--scenario", "mirai-2016", "--start", "2016-09-01T00:00Z", "--duration",
        f"{hours}h", "--scale", str(scale), "--seed", "1", "-o", str(capture), "--no-progress")
    run("simulate", "--scenario", "mirai-2016", "--start", "2016-08-31T00:00Z", "--duration",
        "2h", "--scale", str(scale), "--seed", "2", "-o", str(train), "--no-progress")
    run("backscatter", "train", str(train), "-o", str(work / "model"), "--store",
        str(work / "train.db"), "--telescope", TELESCOPE, "--no-progress")
    run("backscatter", "detect", str(capture), "--model", str(work / "model"), "-o",
        str(data / "verdicts.parquet"), "--victims", str(data / "victims.parquet"),
        "--no-store", "--telescope", TELESCOPE, "--no-progress")
    run("hosts", "attribute", str(capture), "-o", str(data / "hosts.parquet"),
        "--no-progress")
    capture.unlink()
    train.unlink()
    return data


def best(fn, repeat: int = 2) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def duckdb_blocklist(data: Path, out: Path) -> set[str]:
    import duckdb

    duckdb.sql(f"""COPY (SELECT src, min(window_start) AS first_seen, max(window_end) AS
        last_seen, string_agg(DISTINCT decided_by, ';') AS tags, max(confidence) AS confidence
        FROM '{data / "verdicts.parquet"}' WHERE verdict = 'not_ddos' AND src IS NOT NULL
        GROUP BY src) TO '{out}' (HEADER)""")
    return {str(ipaddress.IPv4Address(int(line.split(",")[0])))
            for line in out.read_text().splitlines()[1:]}


def pandas_stix(data: Path, out: Path) -> int:
    """The script a user would write: pandas for the grouping, stix2 for the objects."""
    import pandas as pd
    import stix2

    verdicts = pd.read_parquet(data / "verdicts.parquet", columns=[
        "src", "window_start", "window_end", "packets", "verdict", "decided_by", "confidence"])
    verdicts = verdicts[(verdicts.verdict == "not_ddos") & verdicts.src.notna()]
    grouped = verdicts.groupby("src").agg(
        first=("window_start", "min"), last=("window_end", "max"), packets=("packets", "sum"),
        windows=("packets", "size"), confidence=("confidence", "max"),
        rule=("decided_by", lambda d: d.str.startswith("rule:").any()))
    me = stix2.Identity(name="telescope", identity_class="organization")
    objects = [me]
    for src, row in grouped.iterrows():
        ip = str(ipaddress.IPv4Address(int(src)))
        address = stix2.IPv4Address(value=ip)
        infrastructure = stix2.Infrastructure(name=f"scanner {ip}", created_by_ref=me.id,
                                              infrastructure_types=["reconnaissance"],
                                              first_seen=row["first"], last_seen=row["last"])
        observed = stix2.ObservedData(created_by_ref=me.id, first_observed=row["first"],
                                      last_observed=row["last"],
                                      number_observed=int(row["windows"]),
                                      object_refs=[address.id])
        objects += [address, infrastructure, observed,
                    stix2.Sighting(sighting_of_ref=infrastructure.id, created_by_ref=me.id,
                                   count=int(row["windows"]), observed_data_refs=[observed.id],
                                   where_sighted_refs=[me.id]),
                    stix2.Relationship(infrastructure, "consists-of", address,
                                       created_by_ref=me.id)]
        if row["rule"]:
            indicator = stix2.Indicator(pattern=f"[ipv4-addr:value = '{ip}']",
                                        pattern_type="stix", valid_from=row["first"],
                                        created_by_ref=me.id)
            objects += [indicator, stix2.Relationship(indicator, "indicates", infrastructure,
                                                      created_by_ref=me.id)]
    out.write_text(stix2.Bundle(objects=objects).serialize())
    return len(objects)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, process: subprocess.Popen, auth: tuple[str, str]) -> None:
    import httpx

    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None and time.monotonic() < deadline, "server did not start"
        try:
            httpx.get(url, auth=auth, timeout=5)
            return
        except httpx.TransportError:
            time.sleep(0.2)


def read_through(url: str, auth: dict, limit_s: float = float("inf")
                 ) -> tuple[float, float, int, dict[str, list[dict]]]:
    """First page's time, whole read's time, pages, and the objects per collection title;
    reading stops after ``limit_s`` (the objects then are fewer than the collections')."""
    from taxii2client.v21 import Server, as_pages

    began = time.perf_counter()
    server = Server(url, **auth)
    collections = server.api_roots[0].collections
    first = None
    got: dict[str, list[dict]] = {}
    pages = 0
    for collection in collections:
        for page in as_pages(collection.get_objects, per_request=1000):
            if first is None:
                first = time.perf_counter() - began
            pages += 1
            got.setdefault(collection.title, []).extend(page.get("objects", []))
            if time.perf_counter() - began > limit_s:
                return first or 0.0, time.perf_counter() - began, pages, got
    return first or 0.0, time.perf_counter() - began, pages, got


def taxii(work: Path, data: Path, peer_limit_s: float) -> None:
    from darkscope.intel.taxii import STIX

    store = work / "serve.db"
    run("users", "add", "bench", "--role", "viewer", "--password-stdin", "--store", str(store),
        stdin=PASSWORD + "\n")
    port = _port()
    server = subprocess.Popen([DARKSCOPE, "serve", "--data", str(data), "--store", str(store),
                               "--port", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/taxii2/"
        _wait(f"http://127.0.0.1:{port}/login", server, ("bench", PASSWORD))
        token = subprocess.run([DARKSCOPE, "users", "token", "add", "bench", "--label",
                                "bench", "--store", str(store)], check=True,
                               capture_output=True, text=True).stdout.split()[0]
        from taxii2client.common import TokenAuth

        first, whole, pages, ours = read_through(url, {"auth": TokenAuth(token)})
        again_first, again_whole, _, _ = read_through(url, {"auth": TokenAuth(token)})
    finally:
        server.terminate()
        server.wait()
    count = sum(len(v) for v in ours.values())
    print(f"\nTAXII, {count:,} objects in {len(ours)} collections, pages of 1,000 "
          f"({pages} pages):")
    print(f"  darkscope serve: first page {first:.2f} s (collections built), whole read "
          f"{whole:.2f} s; again (built): first page {again_first:.3f} s, whole "
          f"{again_whole:.2f} s")
    # medallion, memory backend, with the same objects and their manifest
    root = {"information": {"title": "bench", "versions": ["application/taxii+json;version=2.1"],
                            "max_content_length": 10_000_000},
            "status": [], "collections": []}
    for title, objects in ours.items():
        added = "2026-12-01T00:00:00.000000Z"
        root["collections"].append({
            "id": str(uuid.UUID(bytes=hashlib.sha256(title.encode()).digest()[:16])),
            "title": title, "can_read": True, "can_write": False, "media_types": [STIX],
            "objects": [{**o, "_date_added": added} for o in objects],
            "manifest": [{"id": o["id"], "date_added": added, "media_type": STIX,
                          "version": o.get("modified") or o.get("created") or added}
                         for o in objects]})
    medallion_port = _port()
    api_root = f"http://127.0.0.1:{medallion_port}/bench/"
    (work / "medallion-data.json").write_text(json.dumps({
        "/discovery": {"title": "bench", "default": api_root, "api_roots": [api_root]},
        "bench": root}))
    (work / "medallion.json").write_text(json.dumps({
        "backend": {"module": "medallion.backends.memory_backend",
                    "module_class": "MemoryBackend",
                    "filename": str(work / "medallion-data.json")},
        "users": {"bench": PASSWORD}, "taxii": {"max_page_size": 1000}}))
    peer = subprocess.Popen([str(Path(sys.executable).parent / "medallion"), "--port",
                             str(medallion_port), str(work / "medallion.json")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        peer_url = f"http://127.0.0.1:{medallion_port}/taxii2/"
        _wait(peer_url, peer, ("bench", PASSWORD))
        p_first, p_whole, p_pages, theirs = read_through(
            peer_url, {"user": "bench", "password": PASSWORD}, peer_limit_s)
    finally:
        peer.terminate()
        peer.wait()
    read = sum(len(v) for v in theirs.values())
    if read < count:   # stopped: compare the rates over what it served
        print(f"  medallion (memory backend): first page {p_first:.2f} s; stopped after "
              f"{p_whole:.0f} s with {read:,} of the {count:,} objects ({p_pages} pages): "
              f"{read / p_whole:,.0f} objects/s against darkscope's "
              f"{count / again_whole:,.0f}/s once built "
              f"({(count / again_whole) / (read / p_whole):,.1f}x)")
        return
    assert {t: {o["id"] for o in v} for t, v in theirs.items()} == \
        {t: {o["id"] for o in v} for t, v in ours.items()}, "not the same objects"
    print(f"  medallion (memory backend): first page {p_first:.2f} s, whole read "
          f"{p_whole:.2f} s ({p_pages} pages)")
    print(f"  darkscope is {p_whole / again_whole:,.1f}x faster over a whole read once built, "
          f"{p_whole / whole:,.1f}x counting its build")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=int, default=2)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--taxii-scale", type=float, default=0.1)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--peer-limit", type=float, default=600.0,
                        help="Seconds medallion may take to serve the collections before the "
                             "read stops (its memory backend slows with every page).")
    parser.add_argument("--parts", default="export,taxii",
                        help="What to measure: export, taxii or both (comma-separated).")
    args = parser.parse_args()
    parts = {p.strip() for p in args.parts.split(",")}
    work = Path(tempfile.mkdtemp(prefix="intel-bench-", dir=args.workdir))
    try:
        if "export" in parts:
            export(work, args.hours, args.scale)
        if "taxii" in parts:
            taxii(work, make_findings(work / "small", 1, args.taxii_scale), args.peer_limit)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def export(work: Path, hours: int, scale: float) -> None:
    """``export csv|stix|misp`` against their peers on one day of findings."""
    began = time.perf_counter()
    data = make_findings(work / "day", hours, scale)
    print(f"findings of {hours} h at scale {scale} made in "
          f"{time.perf_counter() - began:.0f} s")
    import pyarrow.parquet as pq

    verdicts = pq.read_table(data / "verdicts.parquet", columns=["verdict"])
    print(f"{verdicts.num_rows:,} host-windows")

    csv_out = work / "blocklist.csv"
    ours, _ = best(lambda: run("export", "csv", str(data), "-o", str(csv_out),
                               "--overwrite", "--no-default-allowlist", "--no-progress"))
    peer, peer_ips = best(lambda: duckdb_blocklist(data, work / "duckdb.csv"))
    with csv_out.open() as listed:
        mine = {row["ip"] for row in csv.DictReader(listed)}
    assert {ip for ip in mine if ":" not in ip} == peer_ips, "not the same sources"
    print(f"\nblocklist of {len(mine):,} sources: darkscope export csv {ours:.2f} s "
          f"(process included), DuckDB query {peer:.2f} s: {peer / ours:.2f}x")

    stix_out = work / "findings.json"
    ours, _ = best(lambda: run("export", "stix", str(data), "-o", str(stix_out),
                               "--overwrite", "--no-default-allowlist", "--no-progress"))
    objects = len(json.loads(stix_out.read_text())["objects"])
    peer, peer_objects = best(lambda: pandas_stix(data, work / "pandas.json"), repeat=1)
    print(f"STIX: darkscope export stix {ours:.1f} s for {objects:,} objects "
          f"({objects / ours:,.0f}/s, {stix_out.stat().st_size / objects:,.0f} bytes each);"
          f" pandas + stix2 script {peer:.1f} s for {peer_objects:,} "
          f"({peer_objects / peer:,.0f}/s): {peer / ours:.2f}x, per object "
          f"{(peer / peer_objects) / (ours / objects):.2f}x")

    misp_out = work / "feed"
    ours, _ = best(lambda: run("export", "misp", str(data), "-o", str(misp_out),
                               "--overwrite", "--no-default-allowlist", "--no-progress"),
                   repeat=1)
    print(f"MISP feed: darkscope export misp {ours:.1f} s for {len(mine):,} sources")


if __name__ == "__main__":
    main()
