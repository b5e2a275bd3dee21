"""Packets (columns) to Ethernet frames and pcap records, in one compiled pass.

A numba loop writes each record straight into the output buffer: pcap record header, Ethernet,
IPv4 with its checksum, then TCP (with options), UDP (with a payload template) or ICMP (echo
reply, or an error quoting the original header), with transport checksums. The bytes that
differ between templates (TCP options, UDP payloads and which of their bytes are random) are
data tables, built once below.
"""

from __future__ import annotations

import struct

import numpy as np
from numba import njit

from darkscope.simulate import packets as t
from darkscope.simulate.packets import Packets

PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1)  # ns, Ethernet
ETHERNET = np.frombuffer(bytes.fromhex("00005e005301" "0200c0ffee01" "0800"), np.uint8)

_DNS_ANSWER = (bytes.fromhex("0000" "8180" "0001" "0001" "0000" "0000")
               + b"\x07example\x03com\x00"
               + bytes.fromhex("00010001" "c00c00010001" "00000e10" "0004" "c0000201"))
_DHT_QUERY = (b"d1:ad2:id20:" + bytes(20) + b"9:info_hash20:" + bytes(20)
              + b"e1:q9:get_peers1:t2:aa1:y1:qe")

# template -> (bytes after the transport header, or TCP options; random (offset, length) spans)
_SUFFIXES: dict[int, tuple[bytes, list[tuple[int, int]]]] = {
    t.T_TCP_NONE: (b"", []),
    t.T_TCP_MSS: (bytes.fromhex("020405b4"), []),
    t.T_TCP_NMAP: (bytes.fromhex("020405b4"), []),
    # Linux: mss, sack-permitted, timestamps (TSval filled from the time), nop, wscale 7
    t.T_TCP_LINUX: (bytes.fromhex("020405b4" "0402" "080a0000000000000000" "01" "030307"), []),
    # Windows: mss, nop, wscale 8, nop, nop, sack-permitted
    t.T_TCP_WINDOWS: (bytes.fromhex("020405b4" "01" "030308" "0101" "0402"), []),
    t.T_UDP_DNS: (_DNS_ANSWER, [(0, 2)]),                  # the DNS id
    t.T_UDP_DHT: (_DHT_QUERY, [(12, 20), (46, 20)]),       # node id, info hash
    t.T_UDP_UTP: (bytes.fromhex("4100") + bytes(18), [(2, 2), (4, 8)]),
    t.T_UDP_PROBE: (bytes(16), [(0, 16)]),
    t.T_ICMP_ECHO_REPLY: (bytes(range(56)), []),
    t.T_ICMP_ERROR: (bytes(28), []),                       # filled with the quoted header
}
MAX_SPANS = 2
RANDOM_BYTES = 40


def _tables() -> tuple[np.ndarray, ...]:
    size = max(_SUFFIXES) + 1
    data = b"".join(suffix for suffix, _ in _SUFFIXES.values())
    offset = np.zeros(size, np.int64)
    length = np.zeros(size, np.int64)
    spans = np.zeros((size, MAX_SPANS, 2), np.int64)
    kind = np.full(size, -1, np.int64)  # 6 TCP, 17 UDP, 1 ICMP
    position = 0
    for template, (suffix, random_spans) in _SUFFIXES.items():
        offset[template], length[template] = position, len(suffix)
        position += len(suffix)
        for j, span in enumerate(random_spans):
            spans[template, j] = span
        kind[template] = 6 if template < 10 else 17 if template < 20 else 1
    return np.frombuffer(data, np.uint8).copy(), offset, length, spans, kind


SUFFIX_DATA, SUFFIX_OFFSET, SUFFIX_LENGTH, SUFFIX_SPANS, TEMPLATE_PROTO = _tables()


def frame_lengths(template: np.ndarray) -> np.ndarray:
    proto = TEMPLATE_PROTO[template]
    header = np.where(proto == 6, 20, 8)
    return 34 + header + SUFFIX_LENGTH[template]


@njit(inline="always")
def _put16(out, at, value):
    out[at] = (value >> 8) & 0xFF
    out[at + 1] = value & 0xFF


@njit(inline="always")
def _put32(out, at, value):
    out[at] = (value >> 24) & 0xFF
    out[at + 1] = (value >> 16) & 0xFF
    out[at + 2] = (value >> 8) & 0xFF
    out[at + 3] = value & 0xFF


@njit(inline="always")
def _sum16(out, start, stop):
    total = np.int64(0)
    i = start
    while i + 1 < stop:
        total += (np.int64(out[i]) << 8) | np.int64(out[i + 1])
        i += 2
    if i < stop:
        total += np.int64(out[i]) << 8
    return total


@njit(inline="always")
def _fold(total):
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return (~total) & 0xFFFF


@njit(cache=True, nogil=True)
def _write(out, starts, lengths, ts, src, dst, template, ttl, tos, ip_id, df, sport, dport, seq,
           ack, flags, win, icmp_type, icmp_code, inner_src, inner_dst, inner_proto,
           inner_sport, inner_dport, random, eth, s_data, s_off, s_len, s_spans, t_proto):
    for i in range(len(starts)):
        o = starts[i]
        length = lengths[i]
        sec = ts[i] // 1_000_000_000
        frac = ts[i] % 1_000_000_000
        for k in range(4):  # record header, little-endian
            out[o + k] = (sec >> (8 * k)) & 0xFF
            out[o + 4 + k] = (frac >> (8 * k)) & 0xFF
            out[o + 8 + k] = (length >> (8 * k)) & 0xFF
            out[o + 12 + k] = (length >> (8 * k)) & 0xFF
        f = o + 16
        for k in range(14):
            out[f + k] = eth[k]
        ip = f + 14
        tid = template[i]
        proto = t_proto[tid]
        out[ip] = 0x45
        out[ip + 1] = tos[i]
        _put16(out, ip + 2, length - 14)
        _put16(out, ip + 4, ip_id[i])
        out[ip + 6] = 0x40 if df[i] else 0
        out[ip + 7] = 0
        out[ip + 8] = ttl[i]
        out[ip + 9] = proto
        out[ip + 10] = 0
        out[ip + 11] = 0
        _put32(out, ip + 12, src[i])
        _put32(out, ip + 16, dst[i])
        _put16(out, ip + 10, _fold(_sum16(out, ip, ip + 20)))
        l4 = ip + 20
        stop = f + length
        suffix = s_off[tid]
        n_suffix = s_len[tid]
        if proto == 6:
            _put16(out, l4, sport[i])
            _put16(out, l4 + 2, dport[i])
            _put32(out, l4 + 4, seq[i])
            _put32(out, l4 + 8, ack[i])
            out[l4 + 12] = (5 + n_suffix // 4) << 4
            out[l4 + 13] = flags[i]
            _put16(out, l4 + 14, win[i])
            for k in range(16, 20):
                out[l4 + k] = 0
            for k in range(n_suffix):
                out[l4 + 20 + k] = s_data[suffix + k]
            if n_suffix == 20:  # the Linux layout carries timestamps: TSval in ms
                _put32(out, l4 + 28, (ts[i] // 1_000_000) & 0xFFFFFFFF)
        elif proto == 17:
            _put16(out, l4, sport[i])
            _put16(out, l4 + 2, dport[i])
            _put16(out, l4 + 4, 8 + n_suffix)
            out[l4 + 6] = 0
            out[l4 + 7] = 0
            for k in range(n_suffix):
                out[l4 + 8 + k] = s_data[suffix + k]
            r = 0
            for j in range(s_spans.shape[1]):
                for k in range(s_spans[tid, j, 1]):
                    out[l4 + 8 + s_spans[tid, j, 0] + k] = random[i, r % random.shape[1]]
                    r += 1
        else:
            out[l4] = icmp_type[i]
            out[l4 + 1] = icmp_code[i]
            out[l4 + 2] = 0
            out[l4 + 3] = 0
            if n_suffix == 56:  # echo reply: identifier, sequence, data
                _put16(out, l4 + 4, sport[i])
                _put16(out, l4 + 6, dport[i])
                for k in range(n_suffix):
                    out[l4 + 8 + k] = s_data[suffix + k]
            else:  # error: unused word, then the quoted IPv4 header and 8 transport bytes
                for k in range(4, 36):
                    out[l4 + k] = 0
                q = l4 + 8
                out[q] = 0x45
                _put16(out, q + 2, 40)
                out[q + 8] = 50
                out[q + 9] = inner_proto[i]
                _put32(out, q + 12, inner_src[i])
                _put32(out, q + 16, inner_dst[i])
                _put16(out, q + 10, _fold(_sum16(out, q, q + 20)))
                _put16(out, q + 20, inner_sport[i])
                _put16(out, q + 22, inner_dport[i])
                if inner_proto[i] == 17:
                    _put16(out, q + 24, 20)  # UDP length of the 40-byte quoted datagram
                else:
                    _put32(out, q + 24, seq[i])
            _put16(out, l4 + 2, _fold(_sum16(out, l4, stop)))
            continue
        # TCP/UDP checksum over the pseudo-header and the segment
        seg = stop - l4
        pseudo = (np.int64(src[i]) >> 16) + (np.int64(src[i]) & 0xFFFF) \
            + (np.int64(dst[i]) >> 16) + (np.int64(dst[i]) & 0xFFFF) + proto + seg
        at = l4 + (16 if proto == 6 else 6)
        checksum = _fold(pseudo + _sum16(out, l4, stop))
        if proto == 17 and checksum == 0:
            checksum = 0xFFFF
        _put16(out, at, checksum)


def pcap_records(p: Packets, rng: np.random.Generator) -> np.ndarray:
    """The pcap records (16-byte headers and frames) of ``p``, in the order of ``p``."""
    n = len(p)
    if n == 0:
        return np.zeros(0, np.uint8)
    lengths = frame_lengths(p.template)
    starts = np.zeros(n + 1, np.int64)
    np.cumsum(lengths + 16, out=starts[1:])
    out = np.empty(int(starts[-1]), np.uint8)
    needs_random = TEMPLATE_PROTO[p.template] == 17
    random = np.zeros((n, RANDOM_BYTES), np.uint8)
    random[needs_random] = rng.integers(0, 256, (int(needs_random.sum()), RANDOM_BYTES),
                                        dtype=np.uint8)
    _write(out, starts[:-1], lengths, p.ts, p.src, p.dst, p.template, p.ttl, p.tos, p.ip_id,
           p.df, p.sport, p.dport, p.seq, p.ack, p.flags, p.win, p.icmp_type, p.icmp_code,
           p.inner_src, p.inner_dst, p.inner_proto, p.inner_sport, p.inner_dport, random,
           ETHERNET, SUFFIX_DATA, SUFFIX_OFFSET, SUFFIX_LENGTH, SUFFIX_SPANS, TEMPLATE_PROTO)
    return out
