"""Scenario files (TOML): populations of source hosts over days, validated field by field.

A scenario names the telescope, the period and a list of ``[[population]]`` tables. Each
population is one kind of source (Mirai, ZMap, Masscan, Nmap, generic scanners, DDoS victims
sending backscatter, misconfigured hosts, BitTorrent peers) with its fingerprint and its size
over time. Kind defaults come from the tools' public behaviour (docs/simulate.md cites them);
any field may be overridden, and an unknown or ill-typed field is an error naming it.
"""

from __future__ import annotations

import ipaddress
import itertools
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib.resources import files
from pathlib import Path
from typing import Any

from darkscope.errors import InputFormatError, UsageError
from darkscope.timeutil import NS, parse_duration, parse_instant

KINDS = ("mirai", "zmap", "masscan", "nmap", "scanner", "backscatter", "misconfig",
         "bittorrent")
OPTION_LAYOUTS = ("none", "mss", "linux", "windows", "nmap")
RESPONSES = ("syn-ack", "rst-ack", "rst", "dns", "icmp-echo-reply", "icmp-port-unreachable",
             "icmp-time-exceeded")
# Dates when tools changed their fingerprints (issue #3; docs/simulate.md):
ZMAP_V41 = parse_instant("2024-06-01")       # ZMap 4.1 stopped using IP ID 54321
MASSCAN_2023 = parse_instant("2023-11-01")   # Masscan: window 1024, no options -> 1025 + MSS


@dataclass(frozen=True)
class Service:
    """How a DDoS victim answers the spoofed packets it receives."""

    response: str
    ports: tuple[int, ...]
    weight: float = 1.0


@dataclass(frozen=True)
class Population:
    name: str
    kind: str
    family: str
    daily_hosts: tuple[tuple[int, float], ...] = ((0, 10.0),)
    start_ns: int | None = None
    end_ns: int | None = None
    churn: float = 0.2
    rate: float = 50.0
    rate_sigma: float = 1.0
    day_sigma: float = 0.3
    diurnal: bool = True
    proto: str = "tcp"
    ports: tuple[int, ...] = (23,)
    port_weights: tuple[float, ...] = ()
    ports_per_host: int = 0
    windows: tuple[int, ...] = ()
    window_mode: str = "per_host"
    tos: tuple[int, ...] = (0,)
    ttl: int = 64
    ip_id: str = "random"
    options: str = "none"
    df: bool = False
    seq: str = "random"
    sport: str = "per_host"
    mirai_share: float = 0.0
    version: str = "auto"
    targets_per_host: int = 1
    attacks_per_day: float = 0.0
    duration_median_s: float = 600.0
    duration_sigma: float = 1.5
    attack_rate_median_pps: float = 500.0
    attack_rate_sigma: float = 2.0
    retransmissions: int = 5
    services: tuple[Service, ...] = ()

    @property
    def is_backscatter(self) -> bool:
        return self.kind == "backscatter"


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    prefix: ipaddress.IPv4Network
    start_ns: int
    duration_ns: int
    diurnal_amplitude: float
    diurnal_peak_hour: float
    populations: tuple[Population, ...]
    events: tuple[tuple[int, str], ...] = field(default_factory=tuple)

    @property
    def end_ns(self) -> int:
        return self.start_ns + self.duration_ns

    @property
    def share(self) -> float:
        """The telescope's share of the IPv4 address space."""
        return self.prefix.num_addresses / 2**32


KIND_DEFAULTS: dict[str, dict[str, Any]] = {
    # Mirai's public scanner (scanner.c): 40-byte SYN, no options, TTL 64, random IP ID, seq ==
    # destination address, one probe in ten to 2323; source port and window fixed per bot.
    "mirai": dict(ports=(23, 2323), port_weights=(0.9, 0.1), ttl=64, ip_id="random",
                  options="none", seq="dst", sport="per_host", mirai_share=1.0, rate=200.0),
    # ZMap: IP ID 54321 (until 4.1), window 65535, MSS option, TTL 255.
    "zmap": dict(ports=(80, 443, 22, 8080), ttl=255, ip_id="zmap", windows=(65535,),
                 options="mss", sport="random", rate=5.0, rate_sigma=1.5, diurnal=False),
    # Masscan: IP ID = (dst ^ dport ^ seq) & 0xffff, TTL 255, window 1024 without options
    # (1025 with MSS from late 2023).
    "masscan": dict(ports=(80, 443, 8080, 3389, 445), ttl=255, ip_id="masscan", options="none",
                    sport="random", rate=20.0, rate_sigma=1.5, diurnal=False),
    # Nmap -sS: window 1024, MSS-only options, one source port per scan.
    "nmap": dict(ports=(22, 80, 443, 3389, 8080, 21, 25, 110, 139, 445), windows=(1024,),
                 ttl=48, options="nmap", sport="per_host", rate=3.0, diurnal=False),
    "scanner": dict(ports=(23, 22, 80, 445, 8080, 3389, 5555, 7547), ttl=64, options="linux",
                    df=True, rate=10.0, rate_sigma=1.8, windows=(29200, 64240, 65535, 14600)),
    "backscatter": dict(rate=0.0, diurnal=False, ttl=64, df=True, attacks_per_day=100.0,
                        services=(Service("syn-ack", (80,), 3.0), Service("syn-ack", (443,), 2.0),
                                  Service("rst-ack", (80, 443), 1.0),
                                  Service("syn-ack", (27015, 25565, 3074, 7777), 1.0),
                                  Service("syn-ack", (22,), 0.5), Service("rst", (80,), 0.5),
                                  Service("dns", (53,), 1.0),
                                  Service("icmp-echo-reply", (0,), 0.5),
                                  Service("icmp-port-unreachable", (53, 123, 27015), 0.5),
                                  Service("icmp-time-exceeded", (80,), 0.3))),
    "misconfig": dict(ports=(8080, 3306, 1883, 5060, 161), ttl=64, options="linux", df=True,
                      rate=60.0, rate_sigma=0.8, targets_per_host=1, diurnal=False),
    "bittorrent": dict(proto="udp", ports=(6881, 51413, 6889), ttl=64, rate=20.0,
                       targets_per_host=2, sport="per_host", diurnal=True),
}


class ScenarioError(InputFormatError):
    """A scenario file with a missing, unknown or invalid field."""


def _fail(source: str, where: str, message: str) -> ScenarioError:
    return ScenarioError(source, f"{where}: {message}")


def _port(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
        raise ValueError(f"expected a port number 0..65535, got {value!r}")
    return value


def _int_list(lo: int, hi: int) -> Callable[[Any], tuple[int, ...]]:
    """A list of integers in ``[lo, hi]``; also ``"a-b"`` for a whole range (port sweeps)."""
    def check(value: Any) -> tuple[int, ...]:
        if isinstance(value, str) and value.count("-") == 1:
            first, last = (part.strip() for part in value.split("-"))
            if first.isdigit() and last.isdigit() and lo <= int(first) <= int(last) <= hi:
                return tuple(range(int(first), int(last) + 1))
            raise ValueError(f"expected a range 'a-b' within {lo}..{hi}, got {value!r}")
        if not isinstance(value, list) or not value:
            raise ValueError(f"expected a non-empty list of integers {lo}..{hi}")
        for item in value:
            if not isinstance(item, int) or isinstance(item, bool) or not lo <= item <= hi:
                raise ValueError(f"expected integers {lo}..{hi}, got {item!r}")
        return tuple(value)
    return check


def _number(lo: float, hi: float) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not lo <= value <= hi:
            raise ValueError(f"expected a number in [{lo}, {hi}], got {value!r}")
        return float(value)
    return check


def _integer(lo: int, hi: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise ValueError(f"expected an integer in [{lo}, {hi}], got {value!r}")
        return value
    return check


def _choice(*options: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {value!r}")
        return value
    return check


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value


def _weights(value: Any) -> tuple[float, ...]:
    if not isinstance(value, list) or not value or any(
            not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0 for v in value):
        raise ValueError("expected a list of non-negative numbers")
    if sum(value) <= 0:
        raise ValueError("weights must not all be zero")
    return tuple(float(v) for v in value)


def _profile(value: Any) -> tuple[tuple[int, float], ...]:
    """A host count, or ``[[date, count], ...]`` interpolated linearly between dates."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return ((0, float(value)),)
    if not isinstance(value, list) or not value:
        raise ValueError("expected a number of hosts or a list of [date, hosts] pairs")
    points = []
    for item in value:
        if not isinstance(item, list) or len(item) != 2:
            raise ValueError(f"expected [date, hosts], got {item!r}")
        hosts = item[1]
        if not isinstance(hosts, (int, float)) or isinstance(hosts, bool) or hosts < 0:
            raise ValueError(f"expected a host count >= 0, got {hosts!r}")
        points.append((parse_instant(item[0]), float(hosts)))
    if [p[0] for p in points] != sorted(p[0] for p in points):
        raise ValueError("dates must be in increasing order")
    return tuple(points)


def _services(value: Any) -> tuple[Service, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError("expected a list of {response, ports, weight} tables")
    services = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise ValueError(f"[{i}]: expected a table")
        unknown = set(item) - {"response", "ports", "weight"}
        if unknown:
            raise ValueError(f"[{i}]: unknown field {sorted(unknown)[0]!r}")
        try:
            response = _choice(*RESPONSES)(item.get("response"))
            ports = _int_list(0, 65535)(item.get("ports", [0]))
            weight = _number(0, 1e9)(item.get("weight", 1.0))
        except ValueError as exc:
            raise ValueError(f"[{i}]: {exc}") from None
        services.append(Service(response, ports, weight))
    return tuple(services)


FIELDS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    # TOML key: (Population attribute, validator)
    "family": ("family", _text),
    "hosts": ("daily_hosts", _profile),
    "start": ("start_ns", parse_instant),
    "end": ("end_ns", parse_instant),
    "churn": ("churn", _number(0.0, 1.0)),
    "rate": ("rate", _number(0.0, 1e9)),
    "rate_sigma": ("rate_sigma", _number(0.0, 5.0)),
    "day_sigma": ("day_sigma", _number(0.0, 3.0)),
    "diurnal": ("diurnal", _boolean),
    "proto": ("proto", _choice("tcp", "udp")),
    "ports": ("ports", _int_list(0, 65535)),
    "port_weights": ("port_weights", _weights),
    "ports_per_host": ("ports_per_host", _integer(0, 65536)),
    "windows": ("windows", _int_list(0, 65535)),
    "window_mode": ("window_mode", _choice("per_host", "cycle")),
    "tos": ("tos", _int_list(0, 255)),
    "ttl": ("ttl", _integer(1, 255)),
    "ip_id": ("ip_id", _choice("random", "zmap", "masscan", "incremental")),
    "options": ("options", _choice(*OPTION_LAYOUTS)),
    "df": ("df", _boolean),
    "seq": ("seq", _choice("random", "dst")),
    "sport": ("sport", _choice("per_host", "random")),
    "mirai_share": ("mirai_share", _number(0.0, 1.0)),
    "version": ("version", _text),
    "targets_per_host": ("targets_per_host", _integer(1, 16)),
    "attacks_per_day": ("attacks_per_day", _number(0.0, 1e7)),
    "duration_median_s": ("duration_median_s", _number(1.0, 1e7)),
    "duration_sigma": ("duration_sigma", _number(0.0, 5.0)),
    "attack_rate_median_pps": ("attack_rate_median_pps", _number(1e-3, 1e9)),
    "attack_rate_sigma": ("attack_rate_sigma", _number(0.0, 5.0)),
    "retransmissions": ("retransmissions", _integer(0, 10)),
    "services": ("services", _services),
}


def _population(source: str, index: int, table: Any, run_start: int) -> Population:
    where = f"population[{index}]"
    if not isinstance(table, dict):
        raise _fail(source, where, "expected a table")
    name = table.get("name", f"population-{index}")
    kind = table.get("kind")
    if kind not in KINDS:
        raise _fail(source, f"{where}.kind", f"expected one of {', '.join(KINDS)}, got {kind!r}")
    values: dict[str, Any] = dict(KIND_DEFAULTS[kind])
    if "ports" in table and "port_weights" not in table:
        values.pop("port_weights", None)  # the kind's weights belonged to its own ports
    for key, raw in table.items():
        if key in ("name", "kind"):
            continue
        if key not in FIELDS:
            raise _fail(source, f"{where}.{key}", "unknown field")
        attribute, check = FIELDS[key]
        try:
            values[attribute] = check(raw)
        except ValueError as exc:
            raise _fail(source, f"{where}.{key}", str(exc)) from None
    population = Population(name=str(name), kind=kind, family=values.pop("family", kind),
                            **values)
    if population.port_weights and len(population.port_weights) != len(population.ports):
        raise _fail(source, f"{where}.port_weights", "needs one weight per port")
    if population.kind == "backscatter" and not population.services:
        raise _fail(source, f"{where}.services", "a backscatter population needs services")
    return _versioned(population, population.start_ns or run_start)


def _versioned(pop: Population, start: int) -> Population:
    """Fill version-dependent fingerprints of ZMap and Masscan from the scenario's date."""
    if pop.kind == "zmap" and pop.version == "auto" and pop.ip_id == "zmap" and \
            start >= ZMAP_V41:
        return replace(pop, ip_id="random", version="4.1+")
    if pop.kind == "masscan" and not pop.windows:
        new = start >= MASSCAN_2023 if pop.version == "auto" else pop.version >= "1.3.9"
        return replace(pop, windows=(1025,) if new else (1024,),
                       options=("mss" if new else "none") if pop.options == "none" else
                       pop.options)
    return pop


def parse_scenario(text: str, source: str = "<scenario>") -> Scenario:
    """Parse and validate scenario TOML; errors name the file and the field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(source, f"not valid TOML: {exc}") from None
    head = data.get("scenario", {})
    if not isinstance(head, dict):
        raise _fail(source, "scenario", "expected a table")
    unknown = set(data) - {"scenario", "population", "event"}
    if unknown:
        raise _fail(source, sorted(unknown)[0], "unknown section")
    allowed = {"name", "description", "prefix", "start", "duration", "diurnal_amplitude",
               "diurnal_peak_hour"}
    for key in head:
        if key not in allowed:
            raise _fail(source, f"scenario.{key}", "unknown field")
    try:
        prefix = ipaddress.IPv4Network(head.get("prefix", "198.51.0.0/16"))
    except ValueError as exc:
        raise _fail(source, "scenario.prefix", str(exc)) from None
    try:
        start = parse_instant(head.get("start", "2016-08-01T00:00:00Z"))
    except ValueError as exc:
        raise _fail(source, "scenario.start", str(exc)) from None
    try:
        duration = parse_duration(head.get("duration", "1h"))
    except ValueError as exc:
        raise _fail(source, "scenario.duration", str(exc)) from None
    try:
        amplitude = _number(0.0, 1.0)(head.get("diurnal_amplitude", 0.3))
        peak = _number(0.0, 24.0)(head.get("diurnal_peak_hour", 13.0))
    except ValueError as exc:
        raise _fail(source, "scenario.diurnal_amplitude", str(exc)) from None
    tables = data.get("population", [])
    if not isinstance(tables, list) or not tables:
        raise _fail(source, "population", "at least one [[population]] table is needed")
    populations = tuple(_population(source, i, t, start) for i, t in enumerate(tables))
    names = [p.name for p in populations]
    if len(set(names)) != len(names):
        raise _fail(source, "population.name", "population names must be unique")
    events = []
    for i, event in enumerate(data.get("event", [])):
        try:
            events.append((parse_instant(event["date"]), _text(event["label"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise _fail(source, f"event[{i}]", f"needs date and label ({exc})") from None
    return Scenario(name=str(head.get("name", Path(source).stem)),
                    description=str(head.get("description", "")), prefix=prefix,
                    start_ns=start, duration_ns=duration, diurnal_amplitude=amplitude,
                    diurnal_peak_hour=peak, populations=populations, events=tuple(events))


BUILT_IN = ("demo", "mirai-2016")


def scenario_text(name: str) -> str:
    """The TOML of a built-in scenario: a commented starting point for one's own."""
    if name not in BUILT_IN:
        raise UsageError(f"no built-in scenario {name!r} (built-in: {', '.join(BUILT_IN)})")
    return (files("darkscope.simulate") / "scenarios" / f"{name}.toml").read_text(
        encoding="utf-8")


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A built-in scenario by name (``demo``, ``mirai-2016``) or a TOML file."""
    if str(name_or_path) in BUILT_IN:
        resource = files("darkscope.simulate") / "scenarios" / f"{name_or_path}.toml"
        return parse_scenario(resource.read_text(encoding="utf-8"), f"{name_or_path}.toml")
    path = Path(name_or_path)
    if not path.is_file():
        raise UsageError(f"no scenario file {path} (built-in: {', '.join(BUILT_IN)})")
    return parse_scenario(path.read_text(encoding="utf-8"), str(path))


def hosts_on_day(profile: tuple[tuple[int, float], ...], day_start_ns: int) -> float:
    """Linear interpolation of a host-count profile at a day (constant outside its dates)."""
    if len(profile) == 1:
        return profile[0][1]
    times = [p[0] for p in profile]
    if day_start_ns <= times[0]:
        return profile[0][1]
    if day_start_ns >= times[-1]:
        return profile[-1][1]
    for (t0, h0), (t1, h1) in itertools.pairwise(profile):
        if t0 <= day_start_ns <= t1:
            return h0 + (h1 - h0) * (day_start_ns - t0) / (t1 - t0)
    return profile[-1][1]


DAY_NS = 86400 * NS
