"""Packets (columns) to Ethernet frames and pcap records, vectorised per frame template.

Packets of one template have one frame length, so each template is built as a 2-D byte array
with column assignments (no per-packet Python), checksums included, and the frames are then
scattered into the output in time order.
"""

from __future__ import annotations

import struct

import numpy as np

from darkscope.simulate import packets as t
from darkscope.simulate.packets import Packets

PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1)  # ns, Ethernet
ETHERNET = bytes.fromhex("00005e005301" "0200c0ffee01" "0800")

_OPTIONS = {
    t.T_TCP_NONE: b"",
    t.T_TCP_MSS: bytes.fromhex("020405b4"),
    t.T_TCP_NMAP: bytes.fromhex("020405b4"),
    # Linux: mss, sack-permitted, timestamps, nop, window scale 7
    t.T_TCP_LINUX: bytes.fromhex("020405b4" "0402" "080a0000000000000000" "01" "030307"),
    # Windows: mss, nop, window scale 8, nop, nop, sack-permitted
    t.T_TCP_WINDOWS: bytes.fromhex("020405b4" "01" "030308" "0101" "0402"),
}
_DNS_ANSWER = (bytes.fromhex("0000" "8180" "0001" "0001" "0000" "0000") + b"\x07example\x03com\x00"
               + bytes.fromhex("00010001" "c00c00010001" "00000e10" "0004" "c0000201"))
_DHT_QUERY = (b"d1:ad2:id20:" + bytes(20) + b"9:info_hash20:" + bytes(20)
              + b"e1:q9:get_peers1:t2:aa1:y1:qe")
_UTP_SYN = bytes.fromhex("4100") + bytes(18)
_PROBE = bytes(16)
_ECHO_DATA = bytes(range(56))

# Payload templates and where random bytes go (offset, length) to make payloads differ.
_UDP_PAYLOADS = {
    t.T_UDP_DNS: (_DNS_ANSWER, [(0, 2)]),            # id; the flags stay a response's
    t.T_UDP_DHT: (_DHT_QUERY, [(12, 20), (46, 20)]),  # node id, info hash
    t.T_UDP_UTP: (_UTP_SYN, [(2, 2), (4, 8)]),        # connection id, timestamps
    t.T_UDP_PROBE: (_PROBE, [(0, 16)]),
}


def _be16(frames: np.ndarray, at: int, values: np.ndarray) -> None:
    v = values.astype(np.uint32)
    frames[:, at] = (v >> 8).astype(np.uint8)
    frames[:, at + 1] = (v & 0xFF).astype(np.uint8)


def _be32(frames: np.ndarray, at: int, values: np.ndarray) -> None:
    v = values.astype(np.uint32)
    for i in range(4):
        frames[:, at + i] = ((v >> (24 - 8 * i)) & 0xFF).astype(np.uint8)


def _sum16(block: np.ndarray) -> np.ndarray:
    """One's-complement sum (unfolded) of big-endian 16-bit words of each row."""
    if block.shape[1] % 2:
        block = np.concatenate([block, np.zeros((len(block), 1), np.uint8)], axis=1)
    words = block.reshape(len(block), -1, 2).astype(np.uint32)
    return (words[:, :, 0] << 8 | words[:, :, 1]).sum(axis=1, dtype=np.uint64)


def _fold(total: np.ndarray) -> np.ndarray:
    total = total.astype(np.uint64)
    for _ in range(3):
        total = (total & np.uint64(0xFFFF)) + (total >> np.uint64(16))
    return (~total.astype(np.uint32)) & np.uint32(0xFFFF)


def _ip(frames: np.ndarray, p: Packets, proto: int) -> None:
    n, length = frames.shape
    frames[:, 14] = 0x45
    frames[:, 15] = p.tos
    _be16(frames, 16, np.full(n, length - 14))
    _be16(frames, 18, p.ip_id)
    frames[:, 20] = np.where(p.df, 0x40, 0).astype(np.uint8)
    frames[:, 22] = p.ttl
    frames[:, 23] = proto
    _be32(frames, 26, p.src)
    _be32(frames, 30, p.dst)
    _be16(frames, 24, _fold(_sum16(frames[:, 14:34])))


def _l4_checksum(frames: np.ndarray, p: Packets, proto: int, at: int) -> None:
    """TCP/UDP checksum over the IPv4 pseudo-header and the segment (field at ``at``)."""
    seg_len = frames.shape[1] - 34
    src, dst = p.src.astype(np.uint64), p.dst.astype(np.uint64)
    pseudo = ((src >> np.uint64(16)) + (src & np.uint64(0xFFFF)) + (dst >> np.uint64(16))
              + (dst & np.uint64(0xFFFF)) + np.uint64(proto) + np.uint64(seg_len))
    checksum = _fold(pseudo + _sum16(frames[:, 34:]))
    if proto == 17:
        checksum = np.where(checksum == 0, 0xFFFF, checksum)
    _be16(frames, at, checksum)


def _tcp(p: Packets, template: int) -> np.ndarray:
    options = _OPTIONS[template]
    frames = np.zeros((len(p), 54 + len(options)), np.uint8)
    frames[:, :14] = np.frombuffer(ETHERNET, np.uint8)
    _ip(frames, p, 6)
    _be16(frames, 34, p.sport)
    _be16(frames, 36, p.dport)
    _be32(frames, 38, p.seq)
    _be32(frames, 42, p.ack)
    frames[:, 46] = (5 + len(options) // 4) << 4
    frames[:, 47] = p.flags
    _be16(frames, 48, p.win)
    if options:
        frames[:, 54:] = np.frombuffer(options, np.uint8)
        if template == t.T_TCP_LINUX:  # TSval from the capture time in ms, TSecr 0
            _be32(frames, 54 + 6, (p.ts // 1_000_000) & 0xFFFFFFFF)
    _l4_checksum(frames, p, 6, 50)
    return frames


def _udp(p: Packets, template: int, rng: np.random.Generator) -> np.ndarray:
    payload, random_spans = _UDP_PAYLOADS[template]
    frames = np.zeros((len(p), 42 + len(payload)), np.uint8)
    frames[:, :14] = np.frombuffer(ETHERNET, np.uint8)
    _ip(frames, p, 17)
    _be16(frames, 34, p.sport)
    _be16(frames, 36, p.dport)
    _be16(frames, 38, np.full(len(p), 8 + len(payload)))
    frames[:, 42:] = np.frombuffer(payload, np.uint8)
    for offset, width in random_spans:
        frames[:, 42 + offset: 42 + offset + width] = rng.integers(0, 256, (len(p), width),
                                                                   dtype=np.uint8)
    _l4_checksum(frames, p, 17, 40)
    return frames


def _icmp(p: Packets, template: int) -> np.ndarray:
    body = 56 if template == t.T_ICMP_ECHO_REPLY else 28
    frames = np.zeros((len(p), 42 + body), np.uint8)
    frames[:, :14] = np.frombuffer(ETHERNET, np.uint8)
    _ip(frames, p, 1)
    frames[:, 34] = p.icmp_type
    frames[:, 35] = p.icmp_code
    if template == t.T_ICMP_ECHO_REPLY:
        _be16(frames, 38, p.sport)  # identifier
        _be16(frames, 40, p.dport)  # sequence number
        frames[:, 42:] = np.frombuffer(_ECHO_DATA, np.uint8)
    else:  # the quoted original packet: IPv4 header and 8 bytes of its transport header
        inner = frames[:, 42:70]
        inner[:, 0] = 0x45
        _be16(inner, 2, np.full(len(p), 40))
        inner[:, 8] = 50
        inner[:, 9] = p.inner_proto
        _be32(inner, 12, p.inner_src)
        _be32(inner, 16, p.inner_dst)
        _be16(inner, 10, _fold(_sum16(inner[:, :20])))
        _be16(inner, 20, p.inner_sport)
        _be16(inner, 22, p.inner_dport)
    _be16(frames, 36, _fold(_sum16(frames[:, 34:])))
    return frames


def pcap_records(p: Packets, rng: np.random.Generator) -> np.ndarray:
    """The pcap records (16-byte headers and frames) of ``p``, in the order of ``p``."""
    n = len(p)
    if n == 0:
        return np.zeros(0, np.uint8)
    lengths = np.zeros(n, np.int64)
    built: list[tuple[np.ndarray, np.ndarray]] = []
    for template in np.unique(p.template):
        index = np.flatnonzero(p.template == template)
        part = p.take(index)
        if template in _OPTIONS:
            frames = _tcp(part, int(template))
        elif template in _UDP_PAYLOADS:
            frames = _udp(part, int(template), rng)
        else:
            frames = _icmp(part, int(template))
        lengths[index] = frames.shape[1]
        built.append((index, frames))
    starts = np.zeros(n + 1, np.int64)
    np.cumsum(lengths + 16, out=starts[1:])
    out = np.empty(int(starts[-1]), np.uint8)
    header = np.empty((n, 4), "<u4")
    header[:, 0] = p.ts // 1_000_000_000
    header[:, 1] = p.ts % 1_000_000_000
    header[:, 2] = lengths
    header[:, 3] = lengths
    out[starts[:-1, None] + np.arange(16)] = header.view(np.uint8).reshape(n, 16)
    for index, frames in built:
        out[(starts[index] + 16)[:, None] + np.arange(frames.shape[1])] = frames
    return out
