"""Source hosts as pure functions of (seed, population, index): no per-host state is stored.

Each population owns a disjoint range of global host indices. A host's address is a keyed
permutation of its global index over the 32-bit space (cycle-walking past reserved ranges and
the telescope itself), so addresses are unique across the whole run without a lookup table, and
every per-host attribute (source port, window, hop count, rate) is a hash of the same index.
That keeps memory proportional to the hosts active in one chunk, whatever the run's length.
"""

from __future__ import annotations

import ipaddress

import numpy as np

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)

# Populations get index ranges this far apart (more hosts than any scenario needs).
POPULATION_STRIDE = 1 << 27

_RESERVED = [ipaddress.IPv4Network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/3")]


def mix(values: np.ndarray, salt: int) -> np.ndarray:
    """splitmix64 finaliser of ``values ^ salt``: a fast, well-distributed 64-bit hash."""
    with np.errstate(over="ignore"):
        z = values.astype(np.uint64) ^ np.uint64(salt & 0xFFFFFFFFFFFFFFFF)
        z = z + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def uniform(index: np.ndarray, salt: int) -> np.ndarray:
    """A per-host uniform number in [0, 1) derived from its index."""
    return (mix(index, salt) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _feistel(x: np.ndarray, key: int) -> np.ndarray:
    """A keyed bijection of 32-bit values (4 Feistel rounds over 16-bit halves)."""
    left = (x >> np.uint64(16)) & np.uint64(0xFFFF)
    right = x & np.uint64(0xFFFF)
    for round_ in range(4):
        f = mix(right, key * 4 + round_) & np.uint64(0xFFFF)
        left, right = right, left ^ f
    return (left << np.uint64(16)) | right


class AddressSpace:
    """Unique public source addresses for global host indices, avoiding ``exclude``."""

    def __init__(self, seed: int, exclude: ipaddress.IPv4Network) -> None:
        self.key = seed * 7919 + 17
        nets = [*_RESERVED, exclude]
        self._lo = np.array([int(n.network_address) for n in nets], np.uint64)
        self._hi = np.array([int(n.broadcast_address) for n in nets], np.uint64)

    def _blocked(self, addr: np.ndarray) -> np.ndarray:
        blocked = np.zeros(addr.shape, bool)
        for lo, hi in zip(self._lo, self._hi, strict=True):
            blocked |= (addr >= lo) & (addr <= hi)
        return blocked

    def addresses(self, index: np.ndarray) -> np.ndarray:
        """Cycle-walk the permutation until every address is allowed: still a bijection."""
        addr = _feistel(index.astype(np.uint64) & np.uint64(0xFFFFFFFF), self.key)
        todo = self._blocked(addr)
        while todo.any():
            addr[todo] = _feistel(addr[todo], self.key)
            todo[todo] = self._blocked(addr[todo])
        return addr.astype(np.uint32)
