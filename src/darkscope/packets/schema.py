"""The packet table: one row per captured frame, the spine every darknet part reads.

Representation choices (documented for users in docs/packets.md):
- ``ts`` is ``timestamp[ns, UTC]``; null only for pcapng Simple Packet Blocks, which carry none.
- IPv4 addresses are ``uint32`` in host order (``src``, ``dst``), null for IPv6 rows; IPv6
  addresses are ``fixed_size_binary(16)`` in network byte order (``src6``, ``dst6``), null for
  IPv4 rows. Both are exact, sort in address order and group fast in DuckDB/pandas.
- A field that a packet does not have (ports of ICMP, TCP fields of UDP, inner header of a
  non-error ICMP message, fields past the captured bytes) is null, never a made-up 0.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 1

TIMESTAMP = pa.timestamp("ns", tz="UTC")
IPV6 = pa.binary(16)



def _field(name: str, typ: pa.DataType, nullable: bool = True, *, doc: str) -> pa.Field:
    return pa.field(name, typ, nullable, metadata={"doc": doc})


PACKET_SCHEMA = pa.schema(
    [
        _field("ts", TIMESTAMP, doc="capture time, ns since the Unix epoch, UTC"),
        _field("link_type", pa.uint16(), nullable=False, doc="LINKTYPE_* of the interface"),
        _field("cap_len", pa.uint32(), nullable=False, doc="bytes captured"),
        _field("wire_len", pa.uint32(), nullable=False, doc="bytes on the wire"),
        _field("vlan", pa.uint16(), doc="outermost 802.1Q/802.1ad VLAN id"),
        _field("ip_version", pa.uint8(), doc="4 or 6; null for non-IP frames"),
        _field("src", pa.uint32(), doc="IPv4 source address"),
        _field("dst", pa.uint32(), doc="IPv4 destination address"),
        _field("src6", IPV6, doc="IPv6 source address, network byte order"),
        _field("dst6", IPV6, doc="IPv6 destination address, network byte order"),
        _field("proto", pa.uint8(), doc="IP protocol (IPv6: after extension headers)"),
        _field("ttl", pa.uint8(), doc="IPv4 TTL or IPv6 hop limit"),
        _field("tos", pa.uint8(), doc="IPv4 ToS byte or IPv6 traffic class"),
        _field("ip_id", pa.uint16(), doc="IPv4 identification"),
        _field("ip_flags", pa.uint8(), doc="IPv4 flags (bit 1 DF, bit 0 MF); IPv6: MF"),
        _field("frag_offset", pa.uint16(), doc="fragment offset in 8-byte units"),
        _field("fragment", pa.bool_(), doc="packet is an IP fragment (MF or offset > 0)"),
        _field("ip_len", pa.uint32(), doc="IP total length (IPv6: payload length + 40)"),
        _field("payload_len", pa.uint32(), doc="bytes after the transport header, on the wire"),
        _field("sport", pa.uint16(), doc="TCP/UDP source port"),
        _field("dport", pa.uint16(), doc="TCP/UDP destination port"),
        _field("tcp_flags", pa.uint8(), doc="CWR ECE URG ACK PSH RST SYN FIN"),
        _field("seq", pa.uint32(), doc="TCP sequence number"),
        _field("ack", pa.uint32(), doc="TCP acknowledgment number"),
        _field("win", pa.uint16(), doc="TCP window (unscaled)"),
        _field("tcp_opts", pa.binary(), doc="raw TCP option bytes as captured"),
        _field("tcp_layout", pa.string(), doc="option kinds in order, e.g. mss,nop,ws,sok,ts"),
        _field("tcp_mss", pa.uint16(), doc="MSS option value"),
        _field("tcp_wscale", pa.uint8(), doc="window scale option value"),
        _field("tcp_sack_ok", pa.bool_(), doc="SACK-permitted option present"),
        _field("tcp_tsval", pa.uint32(), doc="timestamps option TSval"),
        _field("tcp_tsecr", pa.uint32(), doc="timestamps option TSecr"),
        _field("icmp_type", pa.uint8(), doc="ICMP or ICMPv6 type"),
        _field("icmp_code", pa.uint8(), doc="ICMP or ICMPv6 code"),
        _field("inner_src", pa.uint32(), doc="ICMP error: quoted IPv4 source"),
        _field("inner_dst", pa.uint32(), doc="ICMP error: quoted IPv4 destination"),
        _field("inner_src6", IPV6, doc="ICMPv6 error: quoted IPv6 source"),
        _field("inner_dst6", IPV6, doc="ICMPv6 error: quoted IPv6 destination"),
        _field("inner_proto", pa.uint8(), doc="ICMP error: quoted protocol"),
        _field("inner_sport", pa.uint16(), doc="ICMP error: quoted TCP/UDP source port"),
        _field("inner_dport", pa.uint16(), doc="ICMP error: quoted TCP/UDP destination port"),
        _field("payload_head", pa.binary(), doc="first 16 captured payload bytes"),
    ],
    metadata={"darkscope.schema": "packets", "darkscope.schema_version": str(SCHEMA_VERSION)},
)

PAYLOAD_HEAD_BYTES = 16

TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK, TCP_URG, TCP_ECE, TCP_CWR = (1 << i for i in range(8))
