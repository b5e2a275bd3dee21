"""`darkscope monitor` on rotating captures: the batch verdicts, every packet once, through
rotation, compression, kill -9 and SIGTERM."""

from __future__ import annotations

import hashlib
import ipaddress
import itertools
import json
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from darkscope import packets
from darkscope.cli import main
from darkscope.store import ReviewStore

from .conftest import DARKSCOPE, TELESCOPE, RotatingWriter, assert_same_verdicts, monitor_verdicts


def _args(watch: Path, model: Path, out: Path, *extra: str) -> list[str]:
    return ["monitor", "--watch", str(watch), "--model", str(model), "--telescope", TELESCOPE,
            "-o", str(out), *extra]


def _alerts(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "alerts.jsonl").read_text().splitlines()]


def test_once_finish_gives_the_batch_verdicts(tmp_path, sim_heldout, short_model,
                                              batch_verdicts, capsys) -> None:
    watch, out, store = tmp_path / "spool", tmp_path / "out", tmp_path / "review.db"
    watch.mkdir()
    shutil.copy(sim_heldout.capture, watch / "telescope.pcap")
    assert main(_args(watch, short_model, out, "--store", str(store), "--once",
                      "--finish")) == 0
    assert "spans judged" in capsys.readouterr().err

    got = monitor_verdicts(out, batch_verdicts.column_names)
    assert_same_verdicts(got, batch_verdicts)
    verdicts = ds.dataset(out / "verdicts", format="parquet", partitioning="hive").to_table()
    weights = hashlib.sha256((short_model / "model.joblib").read_bytes()).hexdigest()
    assert set(verdicts["model_version"].to_pylist()) == {f"v0001@{weights[:12]}"}
    table = ds.dataset(out / "packets", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == packets.read(sim_heldout.capture).num_rows

    # every DDoS host-window is alerted once, provisionally or at its span's end
    alerts = _alerts(out)
    raised = Counter(a["key"] for a in alerts if a["stage"] in ("provisional", "final"))
    retracted = {a["key"] for a in alerts if a["stage"] == "retracted"}
    ddos = batch_verdicts.filter(pc.equal(batch_verdicts["verdict"], "ddos"))
    assert len(set(raised) - retracted) == ddos.num_rows and max(raised.values()) == 1
    first = next(a for a in alerts if a["stage"] != "retracted")
    assert {"host", "window_start", "packets", "confidence", "decided_by", "model_version",
            "features", "packet_time"} <= set(first) and len(first["features"]) == 17

    # attacks: a victim's DDoS windows with no whole window between them are one attack
    window_ns = 600 * 10**9
    expected = 0
    for starts in _ddos_windows_by_host(ddos).values():
        expected += 1 + sum(b - a >= 2 * window_ns for a, b in itertools.pairwise(starts))
    attacks = [a for a in alerts if a["kind"] == "attack"]
    started = Counter(a["key"] for a in attacks if a["stage"] == "start")
    ended = Counter(a["key"] for a in attacks if a["stage"] == "end")
    assert len(started) == expected and started == ended  # --finish: every attack ends
    assert {a["victim"] for a in attacks if a["stage"] == "end"} == set(
        _ddos_windows_by_host(ddos))

    queued = batch_verdicts.filter(pc.equal(batch_verdicts["verdict"], "needs_review"))
    with ReviewStore(store) as review:
        assert len(review.items()) == queued.filter(pc.is_valid(queued["src"])).num_rows

    assert main(["monitor", "--status", "-o", str(out), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["state"] == "stopped" and status["packets"] == table.num_rows
    assert status["ddos_windows"] == ddos.num_rows and status["late_packets"] == 0


def _ddos_windows_by_host(ddos) -> dict[str, list[int]]:
    by_host: dict[str, list[int]] = {}
    for row in ddos.select(["src", "src6", "window_start"]).to_pylist():
        host = row["src6"] or str(ipaddress.IPv4Address(row["src"]))
        by_host.setdefault(host, []).append(int(row["window_start"].timestamp()) * 10**9)
    return {host: sorted(starts) for host, starts in by_host.items()}


def _wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip-after-rotation"])
def test_kill_9_at_any_moment_loses_and_repeats_nothing(tmp_path, sim_heldout, short_model,
                                                        batch_verdicts, compress) -> None:
    watch, out = tmp_path / "spool", tmp_path / "out"
    watch.mkdir()
    writer = RotatingWriter(sim_heldout.capture, watch, files=5, pieces=30, pause_s=0.03,
                            compress=compress).start()
    command = [DARKSCOPE, *_args(watch, short_model, out, "--no-store", "--poll", "0.05",
                                 "--settle", "0.3")]
    rng = random.Random(7 + compress)
    kills = 0
    while writer.is_alive() or kills < 3:
        process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(1.0, 2.5))
        process.kill()  # SIGKILL: no chance to clean up
        process.wait()
        kills += 1
    writer.join()
    time.sleep(0.4)  # let the last compressed file settle
    subprocess.run([*command, "--once", "--finish"], check=True, capture_output=True)

    assert_same_verdicts(monitor_verdicts(out, batch_verdicts.column_names), batch_verdicts)
    table = ds.dataset(out / "packets", format="parquet", partitioning="hive").to_table()
    sent = packets.read(sim_heldout.capture)
    # every packet exactly once: the same multiset of rows (a loss and a repeat would not cancel)
    order = [(name, "ascending") for name in sent.column_names]
    assert table.select(sent.column_names).sort_by(order).equals(sent.sort_by(order))
    alerts = _alerts(out)  # whole lines only: a cut-off line would not parse
    stages = Counter((a["key"], a["stage"], a.get("window_start")) for a in alerts)
    assert max(stages.values()) == 1  # no alert or attack event raised twice
    assert not list((out / ".checkpoint").glob("open-*.parquet"))[1:]  # one at most


def test_sigterm_finishes_the_poll_and_exits_cleanly(tmp_path, sim_heldout, short_model):
    watch, out = tmp_path / "spool", tmp_path / "out"
    watch.mkdir()
    shutil.copy(sim_heldout.capture, watch / "telescope.pcap")
    process = subprocess.Popen([DARKSCOPE, *_args(watch, short_model, out, "--no-store",
                                                  "--poll", "0.05")],
                               stderr=subprocess.PIPE, text=True)
    status = out / "status.json"
    _wait_for(lambda: status.exists() and json.loads(status.read_text())["packets"] > 0)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    final = json.loads(status.read_text())
    assert final["state"] == "stopped" and "Traceback" not in err
    # a restart with other settings would mix two configurations in one output: refused
    result = subprocess.run([DARKSCOPE, *_args(watch, short_model, out, "--no-store",
                                               "--interval", "30", "--once")],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "interval_s 60 -> 30" in result.stderr


@pytest.mark.parametrize(("extra", "message"), [
    (["--finish"], "--finish needs --once"),
    (["--telescope", "/16"], "name the telescope's networks"),
    (["--syslog", "udp://127.0.0.1"], "expected udp://HOST:PORT"),
    (["--syslog", "/nonexistent/log"], "no such socket"),
])
def test_usage_mistakes(tmp_path, short_model, capsys, extra, message) -> None:
    watch = tmp_path / "spool"
    watch.mkdir()
    assert main(_args(watch, short_model, tmp_path / "out", *extra)) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_output_inside_the_watched_directory_is_refused(tmp_path, short_model, capsys):
    assert main(_args(tmp_path, short_model, tmp_path / "out")) == 2
    assert "would read its own outputs" in capsys.readouterr().err


def test_a_directory_that_is_not_a_monitors_is_refused(tmp_path, short_model, capsys):
    watch, out = tmp_path / "spool", tmp_path / "out"
    watch.mkdir()
    out.mkdir()
    (out / "precious.csv").write_text("keep me\n")
    assert main(_args(watch, short_model, out, "--no-store", "--once")) == 1
    assert "not a monitor's (precious.csv)" in capsys.readouterr().err
    assert (out / "precious.csv").read_text() == "keep me\n"


def test_scanners_are_attributed_per_interval_and_rules_mined_per_day(
        tmp_path, sim_heldout, short_model, capsys) -> None:
    watch, out = tmp_path / "spool", tmp_path / "out"
    watch.mkdir()
    shutil.copy(sim_heldout.capture, watch / "telescope.pcap")
    assert main(_args(watch, short_model, out, "--no-store", "--once", "--finish",
                      "--scanner-min-hosts", "20")) == 0
    capsys.readouterr()
    hosts = ds.dataset(out / "hosts", format="parquet", partitioning="hive").to_table()
    # the same attribution as `hosts attribute` per interval, done independently here
    assert main(["hosts", "attribute", str(sim_heldout.capture), "--period", "60s", "-o",
                 str(tmp_path / "batch-hosts.parquet")]) == 0
    batch = pq.read_table(tmp_path / "batch-hosts.parquet")
    key = [("period_start", "ascending"), ("src", "ascending")]
    assert hosts.select(batch.column_names).sort_by(key).equals(batch.sort_by(key))
    rules = pq.read_table(next((out / "rules").glob("date=*/rules.parquet")))
    assert main(["rules", "mine", str(sim_heldout.capture), "--min-hosts", "20", "-o",
                 str(tmp_path / "batch-rules.parquet")]) == 0
    assert rules.num_rows == pq.read_table(tmp_path / "batch-rules.parquet").num_rows > 0
    status = json.loads((out / "status.json").read_text())
    assert status["scanners"]["days"][-1]["rules"] == rules.num_rows


def test_alerts_reach_syslog_and_sighup_reopens_the_log(tmp_path, sim_heldout, short_model):
    """A real syslog datagram socket on loopback; logrotate's rename-then-SIGHUP."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(0.2)
    received: list[bytes] = []
    sent_all = threading.Event()

    def drain() -> None:  # as a syslog daemon would, while the monitor sends
        while True:
            try:
                received.append(receiver.recv(65536))
            except TimeoutError:
                if sent_all.is_set():
                    return

    reader = threading.Thread(target=drain)
    reader.start()
    watch, out, staging = tmp_path / "spool", tmp_path / "out", tmp_path / "staging"
    watch.mkdir()
    staging.mkdir()
    RotatingWriter(sim_heldout.capture, staging, files=2, pieces=1, pause_s=0).run()
    first, second = sorted(staging.iterdir())
    shutil.copy(first, watch / first.name)
    process = subprocess.Popen([DARKSCOPE, *_args(watch, short_model, out, "--no-store",
                                                  "--poll", "0.05", "--syslog",
                                                  f"udp://127.0.0.1:{receiver.getsockname()[1]}")],
                               stderr=subprocess.PIPE, text=True)
    log = out / "alerts.jsonl"
    _wait_for(lambda: log.exists() and log.stat().st_size > 0)
    time.sleep(0.5)
    log.rename(out / "alerts.jsonl.1")
    process.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    shutil.copy(second, watch / second.name)
    _wait_for(lambda: log.exists() and log.stat().st_size > 0)
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err

    written = [line for name in ("alerts.jsonl.1", "alerts.jsonl")
               for line in (out / name).read_text().splitlines()]
    sent_all.set()
    reader.join()
    receiver.close()
    assert len(received) == len(written) > 0
    for datagram, line in zip(received, written, strict=True):
        priority, _, message = datagram.decode().rstrip("\x00").partition(">")
        stage = json.loads(line)["stage"]
        # facility local0 (16): warning (4) for what is new, info (6) for the rest
        assert int(priority.lstrip("<")) == 16 * 8 + (
            4 if stage in ("start", "provisional", "final") else 6)
        assert message == f"darkscope-monitor: {line}"
