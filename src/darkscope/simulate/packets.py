"""The simulator's packets as columns (one numpy array per header field), before framing."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

# Frame templates: what follows the IPv4 header. TCP templates differ by option layout.
T_TCP_NONE, T_TCP_MSS, T_TCP_LINUX, T_TCP_WINDOWS, T_TCP_NMAP = 0, 1, 2, 3, 4
T_UDP_DNS, T_UDP_DHT, T_UDP_UTP, T_UDP_PROBE = 10, 11, 12, 13
T_ICMP_ECHO_REPLY, T_ICMP_ERROR = 20, 21
TCP_TEMPLATE = {"none": T_TCP_NONE, "mss": T_TCP_MSS, "linux": T_TCP_LINUX,
                "windows": T_TCP_WINDOWS, "nmap": T_TCP_NMAP}


@dataclass
class Packets:
    """Struct of arrays; every array has one entry per packet."""

    ts: np.ndarray
    host: np.ndarray          # global host index of the sender (ground truth)
    src: np.ndarray
    dst: np.ndarray
    template: np.ndarray
    ttl: np.ndarray
    tos: np.ndarray
    ip_id: np.ndarray
    df: np.ndarray
    sport: np.ndarray
    dport: np.ndarray
    seq: np.ndarray
    ack: np.ndarray
    flags: np.ndarray
    win: np.ndarray
    icmp_type: np.ndarray
    icmp_code: np.ndarray
    inner_src: np.ndarray
    inner_dst: np.ndarray
    inner_proto: np.ndarray
    inner_sport: np.ndarray
    inner_dport: np.ndarray

    @classmethod
    def empty(cls, n: int) -> Packets:
        """``n`` packets with every field zero, to be filled by a model."""
        dtypes = {"ts": np.int64, "host": np.int64, "src": np.uint32, "dst": np.uint32,
                  "template": np.uint8, "ttl": np.uint8, "tos": np.uint8, "ip_id": np.uint16,
                  "df": np.bool_, "sport": np.uint16, "dport": np.uint16, "seq": np.uint32,
                  "ack": np.uint32, "flags": np.uint8, "win": np.uint16,
                  "icmp_type": np.uint8, "icmp_code": np.uint8, "inner_src": np.uint32,
                  "inner_dst": np.uint32, "inner_proto": np.uint8, "inner_sport": np.uint16,
                  "inner_dport": np.uint16}
        return cls(**{name: np.zeros(n, dtype) for name, dtype in dtypes.items()})

    def __len__(self) -> int:
        return len(self.ts)

    def slice(self, start: int, stop: int) -> Packets:
        """Rows ``start:stop`` as views (no copy)."""
        return Packets(**{f.name: getattr(self, f.name)[start:stop] for f in fields(self)})

    def take(self, index: np.ndarray) -> Packets:
        return Packets(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def concat(parts: list[Packets]) -> Packets:
        if not parts:
            return Packets.empty(0)
        return Packets(**{f.name: np.concatenate([getattr(p, f.name) for p in parts])
                          for f in fields(Packets)})
