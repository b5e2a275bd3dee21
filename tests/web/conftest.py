"""A dashboard served for real on loopback over a monitor's outputs of the held-out simulated
traffic, a review store with its queue, and users of each role."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("fastapi")

DARKSCOPE = str(Path(sys.executable).parent / "darkscope")
TELESCOPE = "203.0.0.0/16"
PASSWORD = "correct horse battery"
HOSTILE = "<script>window.pwned=1</script><img src=x onerror=alert(1)>"
HOSTILE_HOST = "192.0.2.66"
HOSTILE_URL = "http://market.example.onion/listing/\"><script>window.pwned=2</script>"


@dataclass
class Served:
    url: str
    data: Path
    store: Path
    model: Path
    ppml_state: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _hostile_verdicts(path: Path, template: pa.Table) -> None:
    """One verdict row whose strings a crafted file controls, for a host nothing else has."""
    template = template.select([c for c in template.column_names if c not in ("date", "hour")])
    row = template.slice(0, 1).to_pylist()[0]
    row.update(src=int.from_bytes(bytes(map(int, HOSTILE_HOST.split("."))), "big"),
               decided_by=HOSTILE, model_version=HOSTILE, verdict="ddos")
    pq.write_table(pa.Table.from_pylist([row], schema=template.schema), path)


HOSTILE_PAYLOADS = (b"<script>pwned=3<", b"\x00\x1b[2J</td><b>\xff\xfe\r\n")


def _hostile_packets(path: Path, template: Path) -> None:
    """Packets from the crafted verdict's host whose payload heads and option layout carry
    markup and control bytes, as a crafted capture or table could."""
    rows = pq.read_table(template).slice(0, len(HOSTILE_PAYLOADS))
    src = int.from_bytes(bytes(map(int, HOSTILE_HOST.split("."))), "big")
    rows = rows.set_column(rows.schema.get_field_index("src"), "src",
                           pa.array([src] * rows.num_rows, rows.schema.field("src").type))
    rows = rows.set_column(rows.schema.get_field_index("payload_head"), "payload_head",
                           pa.array(HOSTILE_PAYLOADS, pa.binary()))
    rows = rows.set_column(rows.schema.get_field_index("tcp_layout"), "tcp_layout",
                           pa.array([HOSTILE] * rows.num_rows, pa.string()))
    pq.write_table(rows, path)


def _crawl_and_topics(data: Path, work: Path) -> None:
    """The built-in test market crawled through a loopback SOCKS5 proxy (its pages carry
    hostile markup), LDA topics of its listings, and one crafted listing whose strings are
    all hostile."""
    import json

    from darkscope.darkweb.loopback_socks import LoopbackSocks5
    from darkscope.darkweb.testmarket import SESSION_COOKIE, Market, MarketServer

    with MarketServer(Market.generate(seed=0, slow_seconds=0.5)) as market, \
            LoopbackSocks5() as proxy:
        cookies = work / "cookies.txt"
        cookies.write_text("# Netscape HTTP Cookie File\n"
                           f"{market.host}\tFALSE\t/\tFALSE\t0\t{SESSION_COOKIE}\t"
                           f"{market.market.token}\n")
        subprocess.run([DARKSCOPE, "crawl", market.base + "/", "--proxy", proxy.url,
                        "--market", "testmarket", "--cookies", str(cookies), "--timeout", "2",
                        "--retries", "1", "--backoff", "0.2", "-o", str(data / "crawl"),
                        "--no-progress"], check=True, capture_output=True)
    subprocess.run([DARKSCOPE, "topics", "fit", str(data / "crawl" / "listings.jsonl"), "-k",
                    "4", "--seed", "0", "-o", str(data / "topics"), "--no-progress"],
                   check=True, capture_output=True)
    crafted = {"market": HOSTILE, "url": HOSTILE_URL, "title": HOSTILE,
               "description": HOSTILE, "price": 1.0, "currency": "USD", "vendor": HOSTILE,
               "category": HOSTILE, "ships_from": HOSTILE, "ships_to": HOSTILE,
               "crawled_at": "2026-12-01T00:00:00Z", "page_sha256": "0" * 64}
    (data / "crafted-listings.jsonl").write_text(json.dumps(crafted) + "\n")


def _ppml_rounds(data: Path, work: Path) -> Path:
    """A real aggregator's state: round "published" (three parties, solved, one party's
    evaluation report under --data) and round "open" (one of three parties in)."""
    import json

    from darkscope.ppml import datasets, tokens
    from darkscope.ppml.bench import start_aggregator, stop

    def ppml(*args: str) -> dict:
        done = subprocess.run([DARKSCOPE, "ppml", *args, "--json"], capture_output=True,
                              text=True, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    glass = datasets.load("glass", 0)
    names = ["kobe", "nict", "osaka"]
    shares = datasets.split_among_parties(glass.y_train, len(names), 0)
    for name, rows in zip(names, shares, strict=True):
        datasets.write_labelled_csv(work / f"{name}.csv", glass.X_train[rows], glass.y_train[rows])
    datasets.write_labelled_csv(work / "heldout.csv", glass.X_test, glass.y_test)
    tokens.issue(names, work / "tokens")
    token = {n: str(work / "tokens" / f"{n}.token") for n in [*names, tokens.KEYHOLDER]}
    keys = ppml("keys", "-o", str(work / "keys"))
    aggregator, url = start_aggregator(work, work / "tokens" / tokens.HASHES_FILE)
    try:
        for round_id, parties in (("published", names), ("open", names[:1])):
            config = {"round_id": round_id, "parties": names,
                      "classes": sorted({int(c) for c in glass.y_train}), "n_hidden": 20,
                      "activation": "sigmoid", "seed": 0, "scale_bits": "auto",
                      "max_rows_per_party": max(len(r) for r in shares),
                      "feature_low": glass.X_train.min(axis=0).tolist(),
                      "feature_high": glass.X_train.max(axis=0).tolist()}
            (work / f"{round_id}.json").write_text(json.dumps(config))
            ppml("round", "--server", url, "--token-file", token[tokens.KEYHOLDER], "--keys",
                 str(work / "keys"), "--config", str(work / f"{round_id}.json"))
            for name in parties:
                ppml("party", "--server", url, "--token-file", token[name], "--round",
                     round_id, "--data", str(work / f"{name}.csv"), "--expect-key",
                     keys["public_key_sha256"])
        ppml("solve", "--server", url, "--token-file", token[tokens.KEYHOLDER], "--round",
             "published", "--keys", str(work / "keys"))
        ppml("evaluate", "--server", url, "--token-file", token["nict"], "--round",
             "published", "--data", str(work / "heldout.csv"), "--name", "nict", "-o",
             str(data / "nict-evaluation.json"))
    finally:
        stop(aggregator)
    return work / "aggregator-state"


@dataclass
class Outputs:
    data: Path
    store: Path
    ppml_state: Path


@pytest.fixture(scope="session")
def outputs(sim_heldout, sim_train, model_dir, tmp_path_factory) -> Outputs:
    """A monitor's outputs of the held-out traffic, a crafted table, a foreign file, and a
    store with the monitor's review queue and one user of each role."""
    from darkscope.store import ReviewStore
    from darkscope.store.users import UserStore

    root = tmp_path_factory.mktemp("serve")
    data, spool, store = root / "data", root / "spool", root / "darkscope.db"
    spool.mkdir()
    data.mkdir()
    (spool / "heldout.pcap").symlink_to(sim_heldout.capture)
    subprocess.run([DARKSCOPE, "monitor", "--watch", str(spool), "--model", str(model_dir),
                    "--telescope", TELESCOPE, "-o", str(data / "monitor"), "--store",
                    str(store), "--once", "--finish", "--scanner-min-hosts", "20",
                    "--no-progress"], check=True, capture_output=True)
    # rules per hour of the training traffic: a timeline of several periods (the monitor
    # mines a day at a time, and the held-out traffic is two hours)
    subprocess.run([DARKSCOPE, "rules", "mine", str(sim_train.table), "--period", "1h",
                    "--min-hosts", "20", "-o", str(data / "rules-hourly.parquet"),
                    "--no-progress"], check=True, capture_output=True)
    subprocess.run([DARKSCOPE, "hosts", "attribute", str(sim_train.table), "--period", "1h",
                    "-o", str(data / "train-hosts.parquet"), "--no-progress"], check=True,
                   capture_output=True)
    _crawl_and_topics(data, root)
    ppml = root / "ppml"
    ppml.mkdir()
    ppml_state = _ppml_rounds(data, ppml)
    verdicts = pq.ParquetDataset(data / "monitor" / "verdicts").read()
    _hostile_verdicts(data / "crafted-verdicts.parquet", verdicts)
    _hostile_packets(data / "crafted-packets.parquet", sim_heldout.table)
    (data / "notes.parquet").write_bytes(b"PAR1 not really parquet")  # skipped, never fatal
    with ReviewStore(store) as opened:
        users = UserStore(opened)
        for name, role in (("admin", "admin"), ("alice", "expert"), ("bob", "expert"),
                           ("carol", "expert"), ("victor", "viewer")):
            users.add(name, PASSWORD, role)
    return Outputs(data, store, ppml_state)


@pytest.fixture(scope="module")
def served(outputs, model_dir, tmp_path_factory) -> Served:
    """The dashboard on a loopback port, with a copy of the store of its own (each test
    module labels from the same starting queue and model)."""
    import sqlite3

    from darkscope.web.app import Settings

    store = tmp_path_factory.mktemp("store") / "darkscope.db"
    source = sqlite3.connect(outputs.store)
    target = sqlite3.connect(store)
    source.backup(target)
    source.close()
    target.close()
    data = outputs.data
    with serving(Settings(data, store, model_dir, ppml_state=outputs.ppml_state)) as url:
        yield Served(url, data, store, model_dir, outputs.ppml_state)


@contextmanager
def serving(settings) -> Iterator[str]:
    """The dashboard for ``settings`` on a free loopback port, for the block; yields its URL."""
    import uvicorn

    from darkscope.web.app import create_app

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the dashboard did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def login(client, name: str) -> str:
    """Log ``client`` (an httpx.Client) in as ``name``; returns the session's CSRF token."""
    form = client.get("/login")
    token = form.cookies.get("ds_login") or client.cookies.get("ds_login")
    answer = client.post("/login", data={"name": name, "password": PASSWORD,
                                         "login_token": token, "next": "/"})
    assert answer.status_code == 303, answer.text
    return client.get("/api/v1/me").json()["csrf"]
