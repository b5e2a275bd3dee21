"""An IPv6 source's page: its verdicts and the packets behind them, from a dual-stack capture
built here with scapy, ingested and judged by the CLI as a user would."""

from __future__ import annotations

import ipaddress
import random
import subprocess
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from .conftest import DARKSCOPE, PASSWORD, login, serving

TELESCOPE6 = ipaddress.IPv6Network("2001:db8:ab::/48")
SCANNER = "2001:db8:5ca::23"
REFLECTOR = "2001:db8:100::80"
START = 1_700_000_000.0


def _capture(path: Path) -> None:
    from scapy.layers.inet import TCP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    rng = random.Random(16)
    frames = []

    def dark() -> str:
        return str(TELESCOPE6.network_address + (rng.getrandbits(16) << 64)
                   + rng.getrandbits(64))

    def at(offset: float, frame) -> None:
        frame.time = START + offset
        frames.append(frame)

    ether = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    for i in range(80):   # a telnet scanner
        at(i * 20.0, ether / IPv6(src=SCANNER, dst=dark(), hlim=51) /
           TCP(sport=40000 + i, dport=23, flags="S", window=14600))
    for _ in range(60):   # backscatter of a SYN flood on a web server
        at(rng.uniform(0, 3000), ether / IPv6(src=REFLECTOR, dst=dark()) /
           TCP(sport=443, dport=rng.randint(1024, 65535), flags="SA"))
    frames.sort(key=lambda f: f.time)
    wrpcap(str(path), frames)


@pytest.fixture(scope="module")
def served6(model_dir, tmp_path_factory):
    from darkscope.store import ReviewStore
    from darkscope.store.users import UserStore
    from darkscope.web.app import Settings

    root = tmp_path_factory.mktemp("ipv6-serve")
    data, store = root / "data", root / "darkscope.db"
    data.mkdir()
    capture = root / "dual-stack.pcap"
    _capture(capture)
    for args in (["ingest", str(capture), "-o", str(data / "packets.parquet")],
                 ["backscatter", "detect", str(capture), "--model", str(model_dir),
                  "--telescope", str(TELESCOPE6), "-o", str(data / "verdicts.parquet"),
                  "--store", str(store)]):
        subprocess.run([DARKSCOPE, *args, "--no-progress"], check=True, capture_output=True)
    with ReviewStore(store) as opened:
        UserStore(opened).add("victor", PASSWORD, "viewer")
    with serving(Settings(data, store, model_dir, cache=root / "cache.duckdb")) as url:
        yield url, data


@pytest.mark.parametrize("address", [SCANNER, REFLECTOR, "2001:DB8:5CA:0:0:0:0:23"])
def test_an_ipv6_source_has_its_verdicts_and_packets(served6, address) -> None:
    url, data = served6
    packets = pq.read_table(data / "packets.parquet").to_pylist()
    want = ipaddress.IPv6Address(address)
    mine = [p for p in packets if p["src6"] and ipaddress.IPv6Address(p["src6"]) == want]
    verdicts = [v for v in pq.read_table(data / "verdicts.parquet").to_pylist()
                if v["src6"] and ipaddress.IPv6Address(v["src6"]) == want]
    assert mine and verdicts
    with httpx.Client(base_url=url, timeout=60) as client:
        login(client, "victor")
        found = client.get(f"/api/v1/ip/{address}").json()
        assert found["ip"] == str(want)   # shown in its canonical form
        assert found["packets"] == len(mine)
        assert [w["verdict"] for w in found["windows"]] == [v["verdict"] for v in verdicts]
        assert [w["decided_by"] for w in found["windows"]] == [v["decided_by"] for v in verdicts]
        sample = found["sample"]
        assert len(sample) == min(50, len(mine))
        assert [s["dport"] for s in sample] == [p["dport"] for p in
                                                sorted(mine, key=lambda p: p["ts"])][:50]
        assert all(ipaddress.IPv6Address(s["dst"]) in TELESCOPE6 for s in sample)
        top = found["ports"][0]
        assert top["packets"] == max(sum(p["dport"] == q for p in mine)
                                     for q in {p["dport"] for p in mine})
        # the /64s reached, counted from the packets themselves
        per64: dict[str, int] = {}
        for p in mine:
            net = ipaddress.IPv6Network((int.from_bytes(p["dst6"], "big") >> 64 << 64, 64))
            per64[str(net)] = per64.get(str(net), 0) + 1
        shown = {r["prefix"]: r["packets"] for r in found["prefixes"]}
        assert shown and all(per64[k] == v for k, v in shown.items())
        assert len(shown) == min(len(per64), 10)
        page = client.get(f"/ip/{address}")
        assert "/64s hit" in page.text
        assert page.status_code == 200 and str(want) in page.text
        assert page.text.count("<tr", page.text.index('class="packets"')) >= len(sample)
