"""The simulator's output, decoded independently (dpkt), matches each kind's fingerprint and the
ground truth; runs are reproducible; scenarios are validated."""

from __future__ import annotations

import dataclasses
import ipaddress
import struct
from collections import Counter, defaultdict
from pathlib import Path

import dpkt
import numpy as np
import pyarrow.parquet as pq
import pytest

import darkscope.packets as packets
from darkscope.cli import main
from darkscope.simulate import load_scenario, parse_scenario, simulate
from darkscope.timeutil import parse_instant

PREFIX = ipaddress.IPv4Network("198.51.0.0/16")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("demo")
    capture, truth, attacks = out / "demo.pcap", out / "truth.parquet", out / "attacks.parquet"
    result = simulate(load_scenario("demo"), capture, truth=truth, attacks=attacks, seed=7)
    truth_rows = pq.read_table(truth).drop_columns(["first_seen", "last_seen"]).to_pylist()
    by_src = {row["src"]: row for row in truth_rows}
    decoded = defaultdict(list)
    with open(capture, "rb") as handle:
        for ts, buf in dpkt.pcap.Reader(handle):
            ip = dpkt.ethernet.Ethernet(buf).data
            decoded[struct.unpack(">I", ip.src)[0]].append((ts, ip))
    return {"result": result, "truth": by_src, "packets": decoded, "capture": capture,
            "attacks": pq.read_table(attacks).to_pylist(), "truth_path": truth}


def of_kind(demo: dict, kind: str) -> list[tuple[int, list]]:
    hosts = [(src, demo["packets"][src]) for src, row in demo["truth"].items()
             if row["kind"] == kind]
    assert hosts, f"no {kind} hosts in the demo"
    return hosts


def test_truth_counts_match_the_capture(demo) -> None:
    assert set(demo["packets"]) == set(demo["truth"])
    for src, pkts in demo["packets"].items():
        assert demo["truth"][src]["packets"] == len(pkts)
    assert sum(len(p) for p in demo["packets"].values()) == demo["result"].packets
    kinds = Counter(row["kind"] for row in demo["truth"].values())
    for kind in ("mirai", "zmap", "masscan", "nmap", "scanner", "backscatter", "misconfig",
                 "bittorrent"):
        assert kinds[kind] > 0, kind
    assert all(row["ddos"] == (row["kind"] == "backscatter") for row in demo["truth"].values())


def test_every_packet_reaches_the_telescope(demo) -> None:
    for pkts in demo["packets"].values():
        for _, ip in pkts:
            assert ipaddress.IPv4Address(ip.dst) in PREFIX


def test_mirai_fingerprint(demo) -> None:
    ports = Counter()
    for _src, pkts in of_kind(demo, "mirai"):
        sports, windows = set(), set()
        for _, ip in pkts:
            tcp = ip.data
            assert isinstance(tcp, dpkt.tcp.TCP) and tcp.flags == dpkt.tcp.TH_SYN
            assert ip.len == 40 and tcp.off == 5 and not tcp.opts
            assert tcp.seq == struct.unpack(">I", ip.dst)[0]
            assert ip.tos == 0 and not ip.df and ip.ttl < 64
            assert tcp.dport in (23, 2323) and tcp.sport >= 1024
            sports.add(tcp.sport)
            windows.add(tcp.win)
            ports[tcp.dport] += 1
        assert len(sports) == 1
    share = ports[2323] / (ports[23] + ports[2323])
    assert 0.08 < share < 0.12, share


def test_mirai_variant_hosts_cycle_their_windows(demo) -> None:
    variant = [(s, p) for s, p in of_kind(demo, "mirai")
               if demo["truth"][s]["family"] == "mirai-win"]
    windows = [{ip.data.win for _, ip in pkts} for _, pkts in variant]
    assert all(w <= {1320, 2376, 792} for w in windows)
    busy = [w for w, (_, pkts) in zip(windows, variant, strict=True) if len(pkts) >= 12]
    assert len(busy) >= 10
    # each packet picks one of the three, so a host with 12 packets misses one with p < 3%
    assert sum(w == {1320, 2376, 792} for w in busy) >= 0.9 * len(busy)


def test_zmap_and_masscan_fingerprints_of_2016(demo) -> None:
    for _, pkts in of_kind(demo, "zmap"):
        for _, ip in pkts:
            assert ip.id == 54321 and ip.data.win == 65535
            assert dpkt.tcp.parse_opts(ip.data.opts) == [(2, b"\x05\xb4")]
    for _, pkts in of_kind(demo, "masscan"):
        for _, ip in pkts:
            tcp = ip.data
            dst = struct.unpack(">I", ip.dst)[0]
            assert ip.id == (dst ^ tcp.dport ^ tcp.seq) & 0xFFFF
            assert tcp.win == 1024 and not tcp.opts and ip.ttl > 200


def test_fingerprints_follow_the_tools_versions(tmp_path: Path) -> None:
    scenario = parse_scenario("""
[scenario]
start = "2025-01-01"
duration = "1h"
[[population]]
kind = "zmap"
hosts = 3
rate = 2000
[[population]]
kind = "masscan"
hosts = 3
rate = 2000
""")
    path = tmp_path / "new.pcap"
    simulate(scenario, path, seed=3)
    table = packets.read(path).to_pydict()
    zmap_ids = {i for i, w in zip(table["ip_id"], table["win"], strict=True) if w == 65535}
    assert len(zmap_ids) > 100  # ZMap 4.1+ no longer sends IP ID 54321
    masscan = [i for i, w in enumerate(table["win"]) if w == 1025]
    assert masscan and all(table["tcp_layout"][i] == "mss" for i in masscan)


def test_backscatter_replies(demo) -> None:
    victims = {a["sender"]: a for a in demo["attacks"]}
    flags_seen = Counter()
    for src, pkts in of_kind(demo, "backscatter"):
        attack = victims[src]
        assert attack["packets"] == len(pkts)
        for _, ip in pkts:
            l4 = ip.data
            if attack["response"] in ("syn-ack", "rst-ack", "rst"):
                expected = {"syn-ack": 0x12, "rst-ack": 0x14, "rst": 0x04}[attack["response"]]
                assert l4.flags == expected and l4.sport == attack["port"]
                flags_seen[attack["response"]] += 1
            elif attack["response"] == "dns":
                assert l4.sport == 53
                assert dpkt.dns.DNS(l4.data).qr == dpkt.dns.DNS_R
            elif attack["response"] == "icmp-echo-reply":
                assert l4.type == 0
            else:
                assert l4.type in (3, 11)
                inner = dpkt.ip.IP(bytes(l4.data.data)[:20] + b"")
                assert ipaddress.IPv4Address(inner.src) in PREFIX
                assert struct.unpack(">I", inner.dst)[0] == attack["victim"]
    assert flags_seen["syn-ack"] > 0
    retransmitted = [p for s, p in of_kind(demo, "backscatter")
                     if victims[s]["response"] == "syn-ack" and len(p) >= 6]
    assert retransmitted  # SYN-ACKs come back with their retransmissions


def test_same_seed_same_bytes(tmp_path: Path, demo) -> None:
    again = tmp_path / "again.pcap"
    truth = tmp_path / "truth.parquet"
    simulate(load_scenario("demo"), again, truth=truth, seed=7)
    assert again.read_bytes() == demo["capture"].read_bytes()
    assert pq.read_table(truth).equals(pq.read_table(demo["truth_path"]))
    other = tmp_path / "other.pcap"
    simulate(load_scenario("demo"), other, seed=8)
    assert other.read_bytes() != again.read_bytes()


def test_mirai_2016_populations_in_their_periods(tmp_path: Path) -> None:
    scenario = load_scenario("mirai-2016")
    days = {"2016-08-12": "dport-40-666-23", "2016-09-20": "mirai-2323-23"}
    for day, population in days.items():
        one_day = dataclasses.replace(scenario, start_ns=parse_instant(day),
                                      duration_ns=86400 * 10**9)
        truth = tmp_path / f"{day}.parquet"
        simulate(one_day, tmp_path / f"{day}.pcap", truth=truth, seed=1, scale=0.002)
        rows = pq.read_table(truth).to_pydict()
        hosts = Counter(rows["population"])
        assert hosts[population] > 0
        if population == "mirai-2323-23":  # about 480,000 hosts on Sep 20 at full scale
            assert 0.8 * 960 < hosts[population] <= 960
            kinds = Counter(k for k, p in zip(rows["kind"], rows["population"], strict=True)
                            if p == population)
            assert 0.85 < kinds["mirai"] / hosts[population] < 0.95
        else:
            assert "mirai-2323-23" not in hosts


@pytest.mark.parametrize("text,field", [
    ("[[population]]\nkind = 'mirai'\nwindow = [1]", "population[0].window: unknown field"),
    ("[[population]]\nkind = 'botnet'", "population[0].kind"),
    ("[[population]]\nkind = 'mirai'\nports = [70000]", "population[0].ports"),
    ("[[population]]\nkind = 'mirai'\nports = [1, 2]\nport_weights = [1]",
     "population[0].port_weights"),
    ("[scenario]\nduration = 'ten minutes'\n[[population]]\nkind = 'zmap'",
     "scenario.duration"),
    ("[scenario]\nprefix = '198.51.0.1/16'\n[[population]]\nkind = 'zmap'", "scenario.prefix"),
    ("[[population]]\nkind = 'backscatter'\nservices = [{response = 'syn', ports = [80]}]",
     "population[0].services"),
    ("[scenario]\nname = 'x'", "population"),
])
def test_invalid_scenarios_name_the_field(tmp_path: Path, capsys, text: str, field: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert main(["simulate", "--scenario", str(path), "-o", str(tmp_path / "x.pcap")]) == 1
    err = capsys.readouterr().err
    assert field in err and str(path) in err and "Traceback" not in err


def test_cli_writes_capture_table_and_truth(tmp_path: Path, capsys) -> None:
    capture, table = tmp_path / "c.pcap", tmp_path / "packets.parquet"
    assert main(["simulate", "--duration", "10m", "--seed", "2", "-o", str(capture),
                 "--table", str(table), "--truth", str(tmp_path / "t.csv")]) == 0
    assert "packets from" in capsys.readouterr().out
    assert pq.read_table(table).equals(packets.read(capture))
    assert (tmp_path / "t.csv").read_text().startswith('"src","kind"')
    assert main(["simulate", "--duration", "soon", "-o", str(tmp_path / "d.pcap")]) == 2


def test_chunks_are_bounded_and_time_ordered(tmp_path: Path) -> None:
    scenario = dataclasses.replace(load_scenario("demo"), duration_ns=3 * 3600 * 10**9)
    path = tmp_path / "three-hours.pcap"
    simulate(scenario, path, seed=5)
    ts = packets.read(path).column("ts").cast("int64").to_numpy()
    assert np.all(np.diff(ts) >= 0)
    assert ts[-1] - ts[0] > 2.9 * 3600 * 10**9


def test_print_scenario_starts_a_custom_one(tmp_path, capsys):
    from darkscope.cli import main

    assert main(["simulate", "--print-scenario", "demo"]) == 0
    text = capsys.readouterr().out
    custom = tmp_path / "mine.toml"
    custom.write_text(text.replace('name = "demo"', 'name = "mine"'))
    assert load_scenario(str(custom)) == dataclasses.replace(load_scenario("demo"), name="mine")
    assert main(["simulate", "--print-scenario", "nope"]) == 2
    assert "no built-in scenario 'nope' (built-in: demo, mirai-2016)" in capsys.readouterr().err
