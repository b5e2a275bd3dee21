"""An independent decoder built on dpkt: the expected value of every packet-table field.

It follows dpkt's object model (its own link, IP, extension-header and option parsers); only the
table's conventions (nulls, payload bounds, non-first fragments not decoded) are applied here.
"""

from __future__ import annotations

import struct

import dpkt

OPTION_TOKENS = {0: "eol", 1: "nop", 2: "mss", 3: "ws", 4: "sok", 5: "sack", 8: "ts"}
FIELDS_NULL = (
    "vlan", "ip_version", "src", "dst", "src6", "dst6", "proto", "ttl", "tos", "ip_id", "ip_flags",
    "frag_offset", "fragment", "ip_len", "payload_len", "sport", "dport", "tcp_flags", "seq", "ack",
    "win", "tcp_opts", "tcp_layout", "tcp_mss", "tcp_wscale", "tcp_sack_ok", "tcp_tsval",
    "tcp_tsecr", "icmp_type", "icmp_code", "inner_src", "inner_dst", "inner_src6", "inner_dst6",
    "inner_proto", "inner_sport", "inner_dport", "payload_head")


def _u32(addr: bytes) -> int:
    return struct.unpack(">I", addr)[0]


def _layer3(link: int, data: bytes, row: dict) -> tuple[bytes | None, int | None]:
    """Return (network-layer bytes, version hint) using dpkt's link-layer classes."""
    if link == 1:
        eth = dpkt.ethernet.Ethernet(data)
        tags = getattr(eth, "vlan_tags", None) or []
        if tags:
            row["vlan"] = tags[0].id
        ethertype = tags[-1].type if tags else eth.type
        l3 = data[14 + 4 * len(tags):]
        return l3, {dpkt.ethernet.ETH_TYPE_IP: 4, dpkt.ethernet.ETH_TYPE_IP6: 6}.get(ethertype)
    if link == 113:
        sll = dpkt.sll.SLL(data)
        return data[16:], {0x0800: 4, 0x86DD: 6}.get(sll.ethtype)
    if link == 276:
        sll2 = dpkt.sll2.SLL2(data)
        return data[20:], {0x0800: 4, 0x86DD: 6}.get(sll2.ethtype)
    if link == 0:
        family = struct.unpack("<I", data[:4])[0]
        return data[4:], 4 if family == 2 else 6 if family in (10, 24, 28, 30) else None
    if link == 228:
        return data, 4
    if link == 229:
        return data, 6
    if link == 101:
        return data, data[0] >> 4 if data else None
    raise ValueError(link)


def _options(opts: bytes, row: dict) -> None:
    row["tcp_opts"] = opts
    tokens = []
    row["tcp_sack_ok"] = False
    for kind, value in dpkt.tcp.parse_opts(opts):
        tokens.append(OPTION_TOKENS.get(kind, str(kind)))
        if kind == dpkt.tcp.TCP_OPT_MSS and len(value) == 2:
            row["tcp_mss"] = struct.unpack(">H", value)[0]
        elif kind == dpkt.tcp.TCP_OPT_WSCALE and len(value) == 1:
            row["tcp_wscale"] = value[0]
        elif kind == dpkt.tcp.TCP_OPT_SACKOK:
            row["tcp_sack_ok"] = True
        elif kind == dpkt.tcp.TCP_OPT_TIMESTAMP and len(value) == 8:
            row["tcp_tsval"], row["tcp_tsecr"] = struct.unpack(">II", value)
        if kind == dpkt.tcp.TCP_OPT_EOL:
            break  # the table's convention: the option list ends at End of Option List
    row["tcp_layout"] = ",".join(tokens)


def _transport(proto: int, l4: bytes, wire_len: int, row: dict) -> None:
    header = 0
    if proto == 6:
        if len(l4) < 20:
            return
        tcp = dpkt.tcp.TCP(l4) if len(l4) >= (l4[12] >> 4) * 4 else None
        sport, dport, seq, ack, off, flags, win = struct.unpack(">HHIIBBH", l4[:16])
        if tcp is not None:
            sport, dport, seq, ack, flags, win = (tcp.sport, tcp.dport, tcp.seq, tcp.ack,
                                                  tcp.flags, tcp.win)
        row.update(sport=sport, dport=dport, seq=seq, ack=ack, tcp_flags=flags, win=win)
        header = max((off >> 4) * 4, 20)
        _options(l4[20:header], row)
    elif proto == 17:
        if len(l4) < 8:
            return
        udp = dpkt.udp.UDP(l4[:8] + b"")
        row.update(sport=udp.sport, dport=udp.dport)
        header = 8
    elif proto in (1, 58):
        if len(l4) < 8:
            return
        row.update(icmp_type=l4[0], icmp_code=l4[1])
        header = 8
        quoted = l4[8:]
        if proto == 1 and l4[0] in (3, 4, 5, 11, 12) and len(quoted) >= 20 \
                and quoted[0] >> 4 == 4:
            inner = dpkt.ip.IP(quoted[:20] + b"")
            row.update(inner_src=_u32(inner.src), inner_dst=_u32(inner.dst), inner_proto=inner.p)
            ihl = inner.hl * 4
            if inner.offset == 0 and inner.p in (6, 17, 33, 132) and len(quoted) >= ihl + 4:
                row["inner_sport"], row["inner_dport"] = struct.unpack(">HH",
                                                                       quoted[ihl:ihl + 4])
        elif proto == 58 and 1 <= l4[0] <= 4 and len(quoted) >= 40 and quoted[0] >> 4 == 6:
            inner6 = dpkt.ip6.IP6(quoted[:40])
            row.update(inner_src6=inner6.src, inner_dst6=inner6.dst, inner_proto=inner6.nxt)
            if inner6.nxt in (6, 17, 33, 132) and len(quoted) >= 44:
                row["inner_sport"], row["inner_dport"] = struct.unpack(">HH", quoted[40:44])
    row["payload_len"] = max(wire_len - header, 0)
    row["payload_head"] = l4[header:header + 16]


def decode(link: int, data: bytes) -> dict:
    row = dict.fromkeys(FIELDS_NULL)
    l3, version = _layer3(link, data, row)
    if l3 is None:
        return row
    if version == 4 and len(l3) >= 20 and l3[0] >> 4 == 4:
        ip = dpkt.ip.IP(l3[:20] + b"")  # header only: dpkt would reject a short capture
        ihl = ip.hl * 4
        if len(l3) < ihl:
            return row
        row.update(ip_version=4, src=_u32(ip.src), dst=_u32(ip.dst), proto=ip.p, ttl=ip.ttl,
                   tos=ip.tos, ip_id=ip.id, ip_flags=(ip.df << 1) | ip.mf, frag_offset=ip.offset,
                   ip_len=ip.len)
        row["fragment"] = bool(ip.mf or ip.offset)
        body = l3[ihl:ip.len]
        if ip.offset:
            row["payload_len"] = ip.len - ihl
            row["payload_head"] = body[:16]
            return row
        _transport(ip.p, body, ip.len - ihl, row)
    elif version == 6 and len(l3) >= 40 and l3[0] >> 4 == 6:
        ip6 = dpkt.ip6.IP6(l3)
        row.update(ip_version=6, src6=ip6.src, dst6=ip6.dst, ttl=ip6.hlim, tos=ip6.fc,
                   ip_len=ip6.plen + 40, ip_flags=0, frag_offset=0, fragment=False)
        end = 40 + ip6.plen
        # dpkt walks the extension headers; their total length gives the transport offset.
        offset = 40 + sum(h.length for h in ip6.all_extension_headers)
        proto = ip6.p
        frag = ip6.extension_hdrs.get(dpkt.ip.IP_PROTO_FRAGMENT)
        if frag is not None:
            row.update(ip_flags=frag.m_flag, frag_offset=frag.frag_off,
                       fragment=bool(frag.m_flag or frag.frag_off))
        row["proto"] = proto
        body = l3[offset:end]
        if frag is not None and frag.frag_off:
            row["payload_len"] = end - offset
            row["payload_head"] = body[:16]
            return row
        _transport(proto, body, end - offset, row)
    return row
