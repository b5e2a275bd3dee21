"""Test captures built with scapy and written by small, independent pcap/pcapng writers.

The writers here are deliberately plain ``struct`` code, separate from darkscope's reader, so
that byte orders, timestamp resolutions and several interfaces are exercised from the outside.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from scapy.all import (
    ARP,
    DNS,
    DNSQR,
    DNSRR,
    GRE,
    ICMP,
    IP,
    TCP,
    UDP,
    CookedLinux,
    CookedLinuxV2,
    Dot1AD,
    Dot1Q,
    Ether,
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    Loopback,
    Raw,
    fragment,
    raw,
)

LINK_NULL, LINK_ETHERNET, LINK_RAW, LINK_SLL, LINK_IPV4, LINK_IPV6, LINK_SLL2 = (
    0, 1, 101, 113, 228, 229, 276)


@dataclass
class Frame:
    link: int
    data: bytes
    ts_ns: int
    wire_len: int | None = None  # set when the frame is cut to a snap length

    @property
    def orig_len(self) -> int:
        return self.wire_len if self.wire_len is not None else len(self.data)


def _ip_packets() -> list:
    """Layer-3 packets covering what a telescope sees."""
    syn_opts = [("MSS", 1460), ("NOP", None), ("WScale", 7), ("SAckOK", b""),
                ("Timestamp", (123456, 0)), ("EOL", None)]
    quoted_tcp = IP(src="198.51.100.7", dst="203.0.113.9", id=777) / TCP(sport=80, dport=4444,
                                                                           flags="SA")
    quoted_udp = IP(src="198.51.100.8", dst="203.0.113.10") / UDP(sport=5353, dport=53)
    packets = [
        IP(src="10.1.2.3", dst="198.51.0.1", ttl=64, id=54321, tos=24)
        / TCP(sport=40000, dport=23, seq=0xC6330001, flags="S", window=14600, options=syn_opts),
        IP(src="192.0.2.1", dst="198.51.7.7", ttl=52) / TCP(sport=443, dport=1234, flags="SA",
                                                             seq=5, ack=99, window=29200),
        IP(src="192.0.2.2", dst="198.51.7.8", flags="DF") / TCP(sport=80, dport=9999, flags="RA"),
        IP(src="192.0.2.3", dst="198.51.7.9") / TCP(sport=22, dport=1, flags="CE" "S"),
        IP(src="10.9.9.9", dst="198.51.1.1") / UDP(sport=3333, dport=53)
        / DNS(rd=1, qd=DNSQR(qname="example.org")),
        IP(src="8.8.8.8", dst="198.51.1.2") / UDP(sport=53, dport=3333)
        / DNS(qr=1, aa=1, qd=DNSQR(qname="example.org"),
              an=DNSRR(rrname="example.org", rdata="192.0.2.44")),
        IP(src="192.0.2.5", dst="198.51.2.2") / ICMP(type=0, id=7, seq=3)
        / Raw(b"ping-data-0123456789"),
        IP(src="192.0.2.6", dst="198.51.2.3") / ICMP(type=3, code=3) / raw(quoted_tcp)[:28],
        IP(src="192.0.2.7", dst="198.51.2.4") / ICMP(type=11, code=0) / raw(quoted_udp),
        IP(src="192.0.2.8", dst="198.51.2.5") / TCP(sport=80, dport=5000, flags="PA")
        / Raw(b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n"),
        IP(src="192.0.2.9", dst="198.51.2.6") / GRE() / IP(src="1.1.1.1", dst="2.2.2.2"),
        IPv6(src="2001:db8::1", dst="2001:db8:ffff::2", tc=0x28, hlim=61)
        / TCP(sport=51000, dport=443, flags="S", options=[("MSS", 1440), ("SAckOK", b"")]),
        IPv6(src="2001:db8::3", dst="2001:db8:ffff::4") / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrRouting() / IPv6ExtHdrDestOpt() / UDP(sport=546, dport=547) / Raw(b"dhcp6"),
        IPv6(src="2001:db8::5", dst="2001:db8:ffff::6") / ICMPv6EchoReply(id=1, seq=2),
        IPv6(src="2001:db8::7", dst="2001:db8:ffff::8") / ICMPv6DestUnreach(code=4)
        / IPv6(src="2001:db8:ffff::8", dst="2001:db8::9") / TCP(sport=7, dport=8),
        ARP(psrc="198.51.0.1", pdst="198.51.0.2"),
    ]
    big = IP(src="192.0.2.10", dst="198.51.3.3", id=4242) / UDP(sport=1000, dport=2000) / Raw(
        b"x" * 100)
    packets += fragment(big, fragsize=48)
    v6big = IPv6(src="2001:db8::a", dst="2001:db8::b") / IPv6ExtHdrFragment(id=99) / UDP(
        sport=1, dport=2) / Raw(b"y" * 80)
    from scapy.all import fragment6
    packets += fragment6(v6big, 80)
    return packets


def frames_for(link: int, base_ns: int = 1_470_000_000_123_456_000) -> list[Frame]:
    """Every test packet framed for ``link``; Ethernet also gets VLAN, QinQ and snap-cut frames."""
    out: list[Frame] = []
    for i, pkt in enumerate(_ip_packets()):
        is_v6 = isinstance(pkt, IPv6)
        if isinstance(pkt, ARP) and link not in (LINK_ETHERNET, LINK_SLL, LINK_SLL2):
            continue
        if link == LINK_ETHERNET:
            framed = Ether(src="00:11:22:33:44:55", dst="66:77:88:99:aa:bb") / pkt
        elif link == LINK_SLL:
            framed = CookedLinux(pkttype=0, lladdrtype=1, lladdrlen=6) / pkt
        elif link == LINK_SLL2:
            framed = CookedLinuxV2(pkttype=0, lladdrtype=1, lladdrlen=6) / pkt
        elif link == LINK_NULL:
            framed = Loopback(type=24 if is_v6 else 2) / pkt
        elif (link == LINK_IPV4 and is_v6) or (link == LINK_IPV6 and not is_v6):
            continue
        else:
            framed = pkt
        data = raw(framed)
        if link == LINK_ETHERNET and len(data) < 60:
            data += b"\x00" * (60 - len(data))  # Ethernet minimum frame: padding after IP
        out.append(Frame(link, data, base_ns + i * 1_000_123))
    if link == LINK_ETHERNET:
        first = _ip_packets()[0]
        tagged = [
            Ether() / Dot1Q(vlan=42) / first,
            Ether(type=0x88A8) / Dot1AD(vlan=100) / Dot1Q(vlan=200) / _ip_packets()[4],
        ]
        for j, pkt in enumerate(tagged):
            out.append(Frame(link, raw(pkt), base_ns + (100 + j) * 1_000_000))
        whole = raw(Ether() / _ip_packets()[0])
        out.append(Frame(link, whole[:14 + 20 + 24], base_ns + 200_000_000, len(whole)))
        out.append(Frame(link, whole[:14 + 10], base_ns + 201_000_000, len(whole)))
    return out


def write_pcap(frames: list[Frame], link: int, *, big_endian: bool = False,
               nanos: bool = False, snaplen: int = 65535) -> bytes:
    order = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    parts = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, link)]
    for f in frames:
        sec, frac = divmod(f.ts_ns, 1_000_000_000)
        if not nanos:
            frac //= 1000
        parts.append(struct.pack(order + "IIII", sec, frac, len(f.data), f.orig_len))
        parts.append(f.data)
    return b"".join(parts)


def _block(order: str, btype: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    length = 12 + len(body)
    return struct.pack(order + "II", btype, length) + body + struct.pack(order + "I", length)


def _option(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + value + b"\x00" * (-len(value) % 4)


def write_pcapng(interfaces: list[tuple[int, int | None]], frames: list[tuple[int, Frame]],
                 *, big_endian: bool = False, unknown_blocks: bool = True) -> bytes:
    """``interfaces``: (link type, if_tsresol byte or None for the 10^-6 default);
    ``frames``: (interface index, frame), written as enhanced packet blocks."""
    order = ">" if big_endian else "<"
    out = [_block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1)
                  + _option(order, 4, b"darkscope-tests") + _option(order, 0, b""))]
    units = []
    for link, tsresol in interfaces:
        opts = b""
        if tsresol is not None:
            opts += _option(order, 9, bytes([tsresol]))
        opts += _option(order, 0, b"") if opts else b""
        out.append(_block(order, 1, struct.pack(order + "HHI", link, 0, 262144) + opts))
        if tsresol is None:
            units.append((False, 6))
        else:
            units.append((bool(tsresol & 0x80), tsresol & 0x7F))
    if unknown_blocks:
        out.append(_block(order, 0x00000BAD, b"custom block payload"))
    for iface, f in frames:
        pow2, exp = units[iface]
        ticks = (f.ts_ns << exp) // 1_000_000_000 if pow2 else f.ts_ns // 10 ** (9 - exp)
        body = struct.pack(order + "IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF,
                           len(f.data), f.orig_len) + f.data
        out.append(_block(order, 6, body))
        if unknown_blocks and iface == 0:
            out.append(_block(order, 5, struct.pack(order + "IIII", 0, 0, 0, 0)))  # stats
    return b"".join(out)


def expected_ts(ts_ns: int, pow2: bool, exp: int) -> int:
    """What a reader must report for a time written at resolution 10^-exp or 2^-exp."""
    if pow2:
        ticks = (ts_ns << exp) // 1_000_000_000
        return (ticks >> exp) * 1_000_000_000 + int((ticks & ((1 << exp) - 1)) * 1e9 / 2 ** exp)
    return ts_ns // 10 ** (9 - exp) * 10 ** (9 - exp)
