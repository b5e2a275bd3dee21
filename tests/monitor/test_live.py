"""`darkscope monitor --interface`: tcpreplay into a veth pair in a network namespace that the
test creates; every replayed packet is captured once and judged as a batch run judges it."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest

from darkscope import packets
from darkscope.backscatter import persist
from darkscope.backscatter.features import FeatureDefinition
from darkscope.backscatter.flow import detect
from darkscope.backscatter.inputs import read_packets
from darkscope.backscatter.rules import load_rules
from darkscope.backscatter.telescope import parse_telescope
from darkscope.backscatter.training import train

from .conftest import DARKSCOPE, KEY, TELESCOPE, assert_same_verdicts

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("tcpreplay"),
    reason="needs root, iproute2 and tcpreplay (installed by ./run from .ci/apt-packages)")

IDENTITY = ["src", "dst", "proto", "sport", "dport", "ip_id", "seq", "tcp_flags", "ttl"]


def _identities(table) -> Counter:
    """IPv4 packets by their header fields (the capture time differs by design: live packets
    carry the time they arrived)."""
    ipv4 = table.filter(pc.is_valid(table["src"]))
    return Counter(tuple(row.values()) for row in ipv4.select(IDENTITY).to_pylist())


def _replay_failures(report: str) -> int:
    found = re.search(r"Failed packets:\s+(\d+)", report)
    assert found, report
    return int(found.group(1))


def _veth_drops(namespace: str) -> dict[str, int]:
    """Frames the veth pair dropped on the way (its receive backlog full, say)."""
    shown = subprocess.run(["ip", "-n", namespace, "-s", "-j", "link", "show"],
                           capture_output=True, text=True, check=True)
    counts = {link["ifname"]: link["stats64"] for link in json.loads(shown.stdout)}
    return {"va sent": counts["va"]["tx"]["dropped"], "vb received": counts["vb"]["rx"]["dropped"]}


@pytest.fixture
def veth(tmp_path) -> str:
    """A namespace of the test's own with a veth pair va <-> vb, both up, IPv6 off (its
    router solicitations would be stray packets in a span the test does not wait for)."""
    name = f"ds{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for command in (["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"],
                        ["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"],
                        ["ip", "link", "add", "va", "type", "veth", "peer", "name", "vb"],
                        ["ip", "link", "set", "va", "up"], ["ip", "link", "set", "vb", "up"]):
            subprocess.run(["ip", "netns", "exec", name, *command], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture(scope="module")
def ten_second_model(sim_train, tmp_path_factory) -> Path:
    """10 s windows judged alone: a replay at thousands of packets per second closes spans
    within the test (accuracy on such compressed time is not the point: equality is)."""
    table = read_packets([sim_train.table])
    saved, _ = train(table, load_rules(), parse_telescope(TELESCOPE),
                     definition=FeatureDefinition(window_s=10, context_below=0))
    return persist.save(saved, tmp_path_factory.mktemp("ten") / "ten")


def test_replayed_traffic_is_captured_once_and_judged_as_in_batch(
        tmp_path, veth, sim_heldout, ten_second_model) -> None:
    out = tmp_path / "out"
    monitor = subprocess.Popen(
        ["ip", "netns", "exec", veth, DARKSCOPE, "monitor", "--interface", "vb", "--filter",
         "ip or ip6", "--model", str(ten_second_model), "--telescope", TELESCOPE, "-o",
         str(out), "--no-store", "--interval", "1", "--poll", "0.1"],
        stderr=subprocess.PIPE, text=True)
    status = out / "status.json"
    deadline = time.monotonic() + 60
    while not status.exists():
        assert monitor.poll() is None, monitor.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.1)
    replay = subprocess.run(["ip", "netns", "exec", veth, "tcpreplay", "-i", "va", "--pps",
                             "10000", str(sim_heldout.capture)], capture_output=True, text=True)
    assert replay.returncode == 0, replay.stderr
    time.sleep(14)  # the last 10 s span closes on the clock, with no packet to push it
    monitor.send_signal(signal.SIGTERM)
    _, err = monitor.communicate(timeout=30)
    assert monitor.returncode == 0, err

    sent = packets.read(sim_heldout.capture)
    got = ds.dataset(out / "packets", format="parquet", partitioning="hive").to_table()
    final = json.loads(status.read_text())
    # A busy shared machine may lose a frame before the monitor can see it; what counts is that
    # every loss is one the kernel or tcpreplay reports (the monitor's own drops among them)
    # and that nothing is invented or doubled. A veth drop may have been resent by tcpreplay
    # (it retries on ENOBUFS), so those counts bound the losses rather than add to them.
    losses = {"monitor": {k: final[k] for k in ("drops", "skipped_records", "capture_problems",
                                                "packets", "late_packets")},
              "tcpreplay failed": _replay_failures(replay.stdout),
              "veth": _veth_drops(veth)}
    reported = final["drops"]["kernel"] + losses["tcpreplay failed"]
    lost = sent.num_rows - got.num_rows
    assert reported <= lost <= reported + sum(losses["veth"].values()), (lost, losses)
    assert lost <= sent.num_rows // 1000, losses
    missing = _identities(sent)
    missing.subtract(_identities(got))
    assert min(missing.values()) >= 0, "a captured packet that was not sent, or one doubled"
    assert sum(missing.values()) <= lost, losses  # (IPv4 identities only)
    assert final["spans"] >= 1 and final["skipped_records"] == 0
    verdicts = ds.dataset(out / "verdicts", format="parquet", partitioning="hive").to_table()
    batch = detect([out / "packets"], persist.load(ten_second_model), load_rules(),
                   TELESCOPE).verdicts
    assert_same_verdicts(verdicts.select(batch.column_names).sort_by(KEY), batch.sort_by(KEY))
    assert verdicts.num_rows > 1000


def test_capture_mistakes_are_named() -> None:
    from darkscope.errors import UsageError
    from darkscope.packets.live import LiveCapture, compile_filter

    with pytest.raises(UsageError, match="no such network interface"):
        LiveCapture("nosuch0")
    with pytest.raises(UsageError, match="syntax error"):
        compile_filter("port ((", 1)
    assert len(compile_filter("tcp port 80", 1)) % 8 == 0  # sock_filter instructions
