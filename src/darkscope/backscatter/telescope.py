"""The telescope's address blocks: needed to recognise quoted spoofed sources and to scale
observed rates back to the whole Internet (Moore et al.: a /16 sees 1/65,536 of the replies).

A telescope may watch an IPv4 block, an IPv6 block, or both.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa

from darkscope.backscatter.addresses import halves, ipv6_matrix
from darkscope.errors import UsageError

DEFAULT_PREFIX_LENGTH = 16
DEFAULT_PREFIX_LENGTH6 = 48


@dataclass(frozen=True)
class Telescope:
    network: ipaddress.IPv4Network | None = None
    network6: ipaddress.IPv6Network | None = None

    def __str__(self) -> str:
        return ", ".join(str(n) for n in (self.network, self.network6) if n is not None) or "-"

    @property
    def share(self) -> float:
        """The IPv4 block's share of the IPv4 address space (NaN without one): Moore et al.'s
        scaling assumes sources spoofed uniformly over the space, which holds for IPv4 only."""
        return self.network.num_addresses / 2**32 if self.network is not None else float("nan")

    def contains(self, addresses: np.ndarray) -> np.ndarray:
        """Which IPv4 addresses (uint32) lie in the IPv4 block."""
        if self.network is None:
            return np.zeros(addresses.shape, bool)
        mask = np.uint64((0xFFFFFFFF << (32 - self.network.prefixlen)) & 0xFFFFFFFF)
        base = np.uint64(int(self.network.network_address))
        return (addresses.astype(np.uint64) & mask) == base

    def contains6(self, matrix: np.ndarray) -> np.ndarray:
        """Which IPv6 addresses ((n, 16) uint8) lie in the IPv6 block."""
        if self.network6 is None:
            return np.zeros(len(matrix), bool)
        hi, lo = halves(matrix)
        base = int(self.network6.network_address)
        length = self.network6.prefixlen
        mask = (1 << 128) - (1 << (128 - length)) if length else 0
        mask_hi, mask_lo = np.uint64(mask >> 64), np.uint64(mask & (2**64 - 1))
        return ((hi & mask_hi) == np.uint64((base & mask) >> 64)) & \
            ((lo & mask_lo) == np.uint64(base & mask & (2**64 - 1)))


def resolve(spec: str | None, table: pa.Table, known: Telescope | None = None) -> Telescope:
    """The telescope for a packet table. ``spec``: networks (``198.51.0.0/16``,
    ``2001:db8:ab::/48``, or both separated by a comma), a prefix length for the IPv4 block
    (``/16``), or None. A family without a network given is inferred: the block of the default
    length (/16, /48) holding most of the table's destinations of that family. ``known`` keeps
    what an earlier chunk already settled."""
    network4, network6, length = parse_spec(spec)
    scope = known or Telescope(network4, network6)
    if scope.network is None and "dst" in table.column_names:
        dst = table["dst"].drop_null().to_numpy()
        if dst.size:
            scope = replace(scope, network=_most_common4(dst, length))
    if scope.network6 is None and "dst6" in table.column_names and \
            table["dst6"].null_count < table.num_rows:
        matrix, valid = ipv6_matrix(table["dst6"])
        if valid.any():
            scope = replace(scope, network6=_most_common6(matrix[valid]))
    if scope.network is None and scope.network6 is None:
        raise UsageError("--telescope: no destination addresses to infer the network from")
    return scope


def parse_telescope(spec: str) -> Telescope:
    """A telescope named outright (``198.51.0.0/16``, ``2001:db8:ab::/48`` or both), for
    callers that must know it before seeing traffic (the monitor)."""
    network4, network6, _length = parse_spec(spec)
    if network4 is None and network6 is None:
        raise UsageError(f"--telescope: name the telescope's networks (e.g. 198.51.0.0/16 "
                         f"and/or 2001:db8:ab::/48), got {spec!r}")
    return Telescope(network4, network6)


def parse_spec(spec: str | None) -> tuple[ipaddress.IPv4Network | None,
                                          ipaddress.IPv6Network | None, int]:
    """The networks a ``--telescope`` value names, and the IPv4 prefix length to infer a
    block of when it names none."""
    network4 = network6 = None
    length = DEFAULT_PREFIX_LENGTH
    for part in (p.strip() for p in (spec or "").split(",")):
        if not part:
            continue
        try:
            if ":" in part:
                network6 = ipaddress.IPv6Network(part, strict=False)
            elif "." in part:
                network4 = ipaddress.IPv4Network(part, strict=False)
            else:
                length = int(part.lstrip("/"))
        except ValueError:
            raise UsageError(f"--telescope: expected networks like 198.51.0.0/16 and/or "
                             f"2001:db8:ab::/48 (comma-separated) or an IPv4 prefix length "
                             f"like /16, got {spec!r}") from None
    if not 0 <= length <= 32:
        raise UsageError(f"--telescope: prefix length must be 0..32, got {length}")
    return network4, network6, length


def _most_common4(destinations: np.ndarray, length: int) -> ipaddress.IPv4Network:
    blocks = destinations.astype(np.uint64) >> np.uint64(32 - length) if length else \
        np.zeros(destinations.size, np.uint64)
    values, counts = np.unique(blocks, return_counts=True)
    block = int(values[np.argmax(counts)]) << (32 - length) if length else 0
    return ipaddress.IPv4Network((block, length))


def _most_common6(matrix: np.ndarray) -> ipaddress.IPv6Network:
    hi, _ = halves(matrix)
    blocks = hi >> np.uint64(64 - DEFAULT_PREFIX_LENGTH6)
    values, counts = np.unique(blocks, return_counts=True)
    block = int(values[np.argmax(counts)]) << (128 - DEFAULT_PREFIX_LENGTH6)
    return ipaddress.IPv6Network((block, DEFAULT_PREFIX_LENGTH6))
