"""Real captures: every field equals dpkt's decoding of the same file."""

from __future__ import annotations

from pathlib import Path

import dpkt
import pytest

import darkscope.packets as packets
from darkscope.data import sample_capture

from .captures import Frame
from .test_exact import assert_rows_match


def dpkt_frames(path: Path) -> list[Frame]:
    with open(path, "rb") as handle:
        reader = dpkt.pcapng.Reader(handle) if path.suffix == ".pcapng" \
            else dpkt.pcap.Reader(handle)
        link = reader.datalink()
        return [Frame(link, bytes(buf), round(ts * 1e9)) for ts, buf in reader]


@pytest.mark.parametrize("name", ["stopddos_tcp_reflection.pcap", "icmp_traceroute.pcapng"])
def test_sample_capture_every_field(name: str) -> None:
    path = sample_capture(name)
    frames = dpkt_frames(path)
    table = packets.read(path)
    assert_rows_match(table, frames, ts_of=lambda f: f.ts_ns + 500)  # dpkt: float seconds


def test_reflection_capture_facts() -> None:
    """Published facts of the StopDDoS capture: 542 SYN-ACK and 354 SYN from 60 sources."""
    table = packets.read(sample_capture()).to_pydict()
    flags = table["tcp_flags"]
    assert sum(f == 0x12 for f in flags) == 542
    assert sum(f & 0x12 == 0x02 for f in flags) == 354  # 10 of them also set ECE and CWR
    assert len(set(table["src"])) == 60
    assert set(table["dst"]) == {0x0A0A0A0A}


def test_icmp_errors_quote_inner_headers() -> None:
    table = packets.read(sample_capture("icmp_traceroute.pcapng")).to_pydict()
    errors = [i for i, t in enumerate(table["icmp_type"]) if t == 11]
    assert errors
    for i in errors:
        assert table["inner_proto"][i] == 1
        assert table["inner_src"][i] is not None and table["inner_dst"][i] is not None
