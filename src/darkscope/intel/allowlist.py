"""Known research scanners, dropped from every export (``research_scanners.toml``)."""

from __future__ import annotations

import ipaddress
import socket
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from darkscope.errors import UsageError
from darkscope.intel.findings import Source

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Allowlist:
    """Networks by the scanner that uses them; ``owner`` says whose an address is."""

    networks: tuple[tuple[Network, str], ...]
    # per IP version, (first, last, name) as integers: a /16's day has hundreds of thousands
    # of sources, and ipaddress's containment test took seconds for them
    _ranges: dict[int, list[tuple[int, int, str]]] = field(init=False, repr=False,
                                                          compare=False)

    def __post_init__(self) -> None:
        ranges: dict[int, list[tuple[int, int, str]]] = {4: [], 6: []}
        for network, name in self.networks:
            ranges[network.version].append((int(network.network_address),
                                            int(network.broadcast_address), name))
        object.__setattr__(self, "_ranges", ranges)

    @classmethod
    def load(cls, extra: list[str | Path] = (), default: bool = True) -> Allowlist:
        entries: list[tuple[Network, str]] = []
        if default:
            text = resources.files("darkscope.intel").joinpath(
                "research_scanners.toml").read_text(encoding="utf-8")
            entries += _parse(text, "the built-in allowlist")
        for path in extra:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise UsageError(f"{path}: cannot read the allowlist ({exc.strerror})") from None
            entries += _parse(text, str(path))
        return cls(tuple(entries))

    def leave_out(self, sources: list[Source]) -> tuple[list[Source], dict[str, int]]:
        """The sources that are no known scanner's, and how many each scanner had."""
        kept, dropped = [], {}
        for source in sources:
            owner = self.owner(source.ip)
            if owner is None:
                kept.append(source)
            else:
                dropped[owner] = dropped.get(owner, 0) + 1
        return kept, dropped

    def owner(self, ip: str) -> str | None:
        """The first scanner (in list order) one of whose networks holds ``ip``."""
        family, version = (socket.AF_INET6, 6) if ":" in ip else (socket.AF_INET, 4)
        address = int.from_bytes(socket.inet_pton(family, ip), "big")
        return next((name for first, last, name in self._ranges[version]
                     if first <= address <= last), None)


def _parse(text: str, where: str) -> list[tuple[Network, str]]:
    """``[[scanner]]`` tables with ``name`` and ``networks`` (CIDR strings)."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{where}: not TOML ({exc})") from None
    entries = []
    for i, scanner in enumerate(document.get("scanner", [])):
        name = scanner.get("name")
        if not isinstance(name, str) or not isinstance(scanner.get("networks"), list):
            raise UsageError(f"{where}: scanner #{i + 1} needs a name and a list of networks")
        for cidr in scanner["networks"]:
            try:
                entries.append((ipaddress.ip_network(cidr), name))
            except (TypeError, ValueError):
                raise UsageError(f"{where}: scanner {name!r}: {cidr!r} is not a network "
                                 "(CIDR such as 192.0.2.0/24)") from None
    return entries
