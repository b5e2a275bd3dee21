"""The telescope's address block: needed to recognise quoted spoofed sources and to scale
observed rates back to the whole Internet (Moore et al.: a /16 sees 1/65,536 of the replies)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import numpy as np

from darkscope.errors import UsageError

DEFAULT_PREFIX_LENGTH = 16


@dataclass(frozen=True)
class Telescope:
    network: ipaddress.IPv4Network

    @property
    def share(self) -> float:
        """The telescope's share of the IPv4 address space."""
        return self.network.num_addresses / 2**32

    def contains(self, addresses: np.ndarray) -> np.ndarray:
        mask = np.uint64((0xFFFFFFFF << (32 - self.network.prefixlen)) & 0xFFFFFFFF)
        base = np.uint64(int(self.network.network_address))
        return (addresses.astype(np.uint64) & mask) == base


def resolve(spec: str | None, destinations: np.ndarray) -> Telescope:
    """``spec`` is a network (``198.51.0.0/16``), a prefix length (``/16`` or ``16``) or None
    (length /16). Without a network, the block of that length holding most destinations."""
    text = (spec or f"/{DEFAULT_PREFIX_LENGTH}").strip()
    try:
        if "." in text:
            return Telescope(ipaddress.IPv4Network(text, strict=False))
        length = int(text.lstrip("/"))
    except ValueError:
        raise UsageError(f"--telescope: expected a network like 198.51.0.0/16 or a prefix "
                         f"length like /16, got {spec!r}") from None
    if not 0 <= length <= 32:
        raise UsageError(f"--telescope: prefix length must be 0..32, got {length}")
    if destinations.size == 0:
        raise UsageError("--telescope: no destination addresses to infer the network from")
    blocks = destinations.astype(np.uint64) >> np.uint64(32 - length) if length else \
        np.zeros(destinations.size, np.uint64)
    values, counts = np.unique(blocks, return_counts=True)
    block = int(values[np.argmax(counts)]) << (32 - length) if length else 0
    return Telescope(ipaddress.IPv4Network((block, length)))
