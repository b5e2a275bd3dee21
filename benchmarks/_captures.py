"""Vectorised generators of large benchmark captures (no per-packet Python)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

GLOBAL_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)


def _checksum_free_ipv4(n: int, rng: np.random.Generator, total_len: int,
                        proto: int) -> np.ndarray:
    ip = np.zeros((n, 20), np.uint8)
    ip[:, 0] = 0x45
    ip[:, 2:4] = np.array([total_len >> 8, total_len & 0xFF], np.uint8)
    ip[:, 4:6] = rng.integers(0, 256, (n, 2), dtype=np.uint8)
    ip[:, 8] = rng.integers(30, 255, n, dtype=np.uint8)
    ip[:, 9] = proto
    ip[:, 12:16] = rng.integers(1, 224, (n, 4), dtype=np.uint8)
    ip[:, 16] = 198
    ip[:, 17] = 51
    ip[:, 18:20] = rng.integers(0, 256, (n, 2), dtype=np.uint8)
    return ip


def syn_frames(n: int, seed: int = 1) -> np.ndarray:
    """``n`` darknet-like frames: Ethernet + IPv4 + 20-byte TCP SYN, padded to 60 bytes."""
    rng = np.random.default_rng(seed)
    frames = np.zeros((n, 60), np.uint8)
    frames[:, 12:14] = (0x08, 0x00)
    frames[:, 14:34] = _checksum_free_ipv4(n, rng, 40, 6)
    tcp = frames[:, 34:54]
    tcp[:, 0] = rng.integers(4, 256, n, dtype=np.uint8)  # source port >= 1024
    tcp[:, 1] = rng.integers(0, 256, n, dtype=np.uint8)
    tcp[:, 2:4] = np.array([0, 23], np.uint8)
    tcp[:, 4:8] = frames[:, 30:34]  # Mirai-like: sequence number == destination address
    tcp[:, 12] = 0x50
    tcp[:, 13] = 0x02
    tcp[:, 14:16] = rng.integers(0, 256, (n, 2), dtype=np.uint8)
    return frames


def mixed_frames(n: int, seed: int = 2) -> list[np.ndarray]:
    """A mix by volume: SYNs with options (74 bytes), SYN-ACK backscatter, UDP/DNS, ICMP."""
    rng = np.random.default_rng(seed)
    quarter = n // 4
    syn = np.zeros((quarter, 74), np.uint8)
    syn[:, 12:14] = (0x08, 0x00)
    syn[:, 14:34] = _checksum_free_ipv4(quarter, rng, 60, 6)
    syn[:, 34:36] = rng.integers(0, 256, (quarter, 2), dtype=np.uint8)
    syn[:, 36:38] = (0x01, 0xBB)
    syn[:, 46] = 0xA0
    syn[:, 47] = 0x02
    syn[:, 48:50] = (0xFA, 0xF0)
    syn[:, 54:74] = np.frombuffer(bytes.fromhex("020405b40402080a0000000100000000" "01030307"),
                                  np.uint8)
    synack = syn_frames(quarter, seed + 1)
    synack[:, 47] = 0x12
    udp = np.zeros((quarter, 14 + 20 + 8 + 33), np.uint8)
    udp[:, 12:14] = (0x08, 0x00)
    udp[:, 14:34] = _checksum_free_ipv4(quarter, rng, 20 + 8 + 33, 17)
    udp[:, 34:36] = (0, 53)
    udp[:, 36:38] = rng.integers(0, 256, (quarter, 2), dtype=np.uint8)
    udp[:, 38:40] = (0, 41)
    udp[:, 42:44] = rng.integers(0, 256, (quarter, 2), dtype=np.uint8)
    udp[:, 44:46] = (0x81, 0x80)
    icmp = np.zeros((n - 3 * quarter, 14 + 20 + 8 + 28), np.uint8)
    m = len(icmp)
    icmp[:, 12:14] = (0x08, 0x00)
    icmp[:, 14:34] = _checksum_free_ipv4(m, rng, 20 + 8 + 28, 1)
    icmp[:, 34] = 3
    icmp[:, 35] = 3
    inner = icmp[:, 42:70]
    inner[:, 0] = 0x45
    inner[:, 9] = 17
    inner[:, 12:20] = rng.integers(0, 256, (m, 8), dtype=np.uint8)
    return [syn, synack, udp, icmp]


def write_pcap(path: Path, groups: list[np.ndarray], seed: int = 3) -> int:
    """Write frame groups interleaved at random as one little-endian microsecond pcap."""
    rng = np.random.default_rng(seed)
    sizes = np.concatenate([np.full(len(g), g.shape[1], np.int64) for g in groups])
    order = rng.permutation(len(sizes))
    sizes = sizes[order]
    n = len(sizes)
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(sizes + 16, out=offsets[1:])
    out = np.zeros(offsets[-1], np.uint8)
    ts = 1_470_000_000_000_000 + np.cumsum(rng.integers(1, 50, n))
    header = np.zeros((n, 4), np.uint32)
    header[:, 0] = ts // 1_000_000
    header[:, 1] = ts % 1_000_000
    header[:, 2] = sizes
    header[:, 3] = sizes
    header_bytes = header.view(np.uint8).reshape(n, 16)
    index = np.arange(n)
    starts = offsets[:-1]
    out[starts[:, None] + np.arange(16)] = header_bytes
    group_of = np.concatenate([np.full(len(g), i) for i, g in enumerate(groups)])[order]
    row_in_group = np.concatenate([np.arange(len(g)) for g in groups])[order]
    for i, g in enumerate(groups):
        sel = index[group_of == i]
        width = g.shape[1]
        out[(starts[sel] + 16)[:, None] + np.arange(width)] = g[row_in_group[sel]]
    with open(path, "wb") as handle:
        handle.write(GLOBAL_HEADER)
        handle.write(out.tobytes())
    return n
