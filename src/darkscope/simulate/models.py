"""Traffic models: what each kind of source sends into the telescope, vectorised per chunk.

Scanning kinds (Mirai, ZMap, Masscan, Nmap, generic scanners, misconfigured hosts, BitTorrent)
send packets from their own address; DDoS victims send backscatter: replies to packets whose
source the attacker spoofed with telescope addresses. Fingerprints and sources: docs/simulate.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from darkscope.simulate import packets as t
from darkscope.simulate.hosts import POPULATION_STRIDE, AddressSpace, mix, uniform
from darkscope.simulate.packets import Packets
from darkscope.simulate.scenario import DAY_NS, Population, Scenario
from darkscope.timeutil import NS

MIRAI_MAX_PPS = 160.0  # a Mirai bot's scanner sends at most about 160 SYN/s
SYN, SYN_ACK, RST, RST_ACK = 0x02, 0x12, 0x04, 0x14

# Salts for per-host attributes (any distinct constants).
S_RATE, S_SPORT, S_WIN, S_HOPS, S_MIRAI, S_PORTS, S_TARGET, S_DAY, S_TTL0 = range(101, 110)


def normal(index: np.ndarray, salt: int) -> np.ndarray:
    """A per-host standard normal number (Box-Muller on two hashed uniforms)."""
    u1 = np.maximum(uniform(index, salt), 1e-12)
    u2 = uniform(index, salt + 7777)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


@dataclass(frozen=True)
class Telescope:
    base: int
    size: int

    def addresses(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return (self.base + rng.integers(0, self.size, n)).astype(np.uint32)


def host_ids(pop_index: int, local: np.ndarray) -> np.ndarray:
    return local.astype(np.int64) + (pop_index + 1) * POPULATION_STRIDE


def daily_rate(pop: Population, hosts: np.ndarray, day: int, share: float) -> np.ndarray:
    """Expected packets a host sends into the telescope on ``day``: heavy-tailed (log-normal
    across hosts) and varying from day to day."""
    base = pop.rate * np.exp(pop.rate_sigma * normal(hosts, S_RATE))
    daily = base * np.exp(pop.day_sigma * normal(hosts * 1000 + day, S_DAY))
    if pop.kind == "mirai":
        daily = np.minimum(daily, MIRAI_MAX_PPS * 86400 * share)
    return daily


def diurnal_factor(scenario: Scenario, mid_ns: int) -> float:
    hour = (mid_ns % DAY_NS) / (3600 * NS)
    phase = 2 * np.pi * (hour - scenario.diurnal_peak_hour) / 24
    return 1.0 + scenario.diurnal_amplitude * float(np.cos(phase))


def _pick(values: tuple[int, ...], weights: tuple[float, ...], rng: np.random.Generator,
          n: int) -> np.ndarray:
    if len(values) == 1:
        return np.full(n, values[0], np.int64)
    p = np.asarray(weights, float) / sum(weights) if weights else None
    return np.asarray(values, np.int64)[rng.choice(len(values), n, p=p)]


@dataclass
class HostStats:
    """First and last packet time and packet count of each host that sent in a chunk."""

    host: np.ndarray
    first: np.ndarray
    last: np.ndarray
    count: np.ndarray


def scanning(pop: Population, hosts: np.ndarray, counts: np.ndarray, t0: int, t1: int,
             space: AddressSpace, scope: Telescope,
             rng: np.random.Generator) -> tuple[Packets, HostStats]:
    """Packets of a scanning population: ``counts[i]`` packets from host ``hosts[i]``.

    Packets come grouped by host, so the truth's per-host statistics are segment reductions
    (no sort)."""
    n = int(counts.sum())
    p = Packets.empty(n)
    sending = counts > 0
    if n == 0:
        return p, HostStats(hosts[sending], hosts[sending], hosts[sending], counts[sending])
    per_packet = np.repeat(np.arange(len(hosts)), counts)
    h = hosts[per_packet]
    p.host[:] = h
    p.ts[:] = rng.integers(t0, t1, n)
    segments = np.r_[0, np.cumsum(counts[sending])[:-1]]
    stats = HostStats(hosts[sending], np.minimum.reduceat(p.ts, segments),
                      np.maximum.reduceat(p.ts, segments), counts[sending].astype(np.int64))
    p.src[:] = space.addresses(hosts)[per_packet]
    mirai = (uniform(hosts, S_MIRAI) < pop.mirai_share)[per_packet]

    if pop.kind in ("misconfig", "bittorrent"):  # a few fixed telescope addresses per host
        which = rng.integers(0, pop.targets_per_host, n)
        p.dst[:] = scope.base + (mix(h * 16 + which, S_TARGET) % np.uint64(scope.size))
    else:
        p.dst[:] = scope.addresses(rng, n)

    if pop.ports_per_host or pop.kind in ("misconfig", "bittorrent"):
        k = max(pop.ports_per_host, 1)
        slot = rng.integers(0, k, n)
        choice = mix(h * 64 + slot, S_PORTS) % np.uint64(len(pop.ports))
        p.dport[:] = np.asarray(pop.ports)[choice.astype(np.int64)]
    else:
        p.dport[:] = _pick(pop.ports, pop.port_weights, rng, n)

    if pop.sport == "per_host":
        p.sport[:] = 1024 + (mix(h, S_SPORT) % np.uint64(64512)).astype(np.int64)
    else:
        p.sport[:] = rng.integers(1024, 65536, n)

    if not pop.windows:
        p.win[:] = (mix(h, S_WIN) & np.uint64(0xFFFF)).astype(np.int64)
    elif pop.window_mode == "per_host":
        pick = (mix(h, S_WIN) % np.uint64(len(pop.windows))).astype(np.int64)
        p.win[:] = np.asarray(pop.windows)[pick]
    else:
        p.win[:] = np.asarray(pop.windows)[rng.integers(0, len(pop.windows), n)]
    p.tos[:] = np.asarray(pop.tos)[rng.integers(0, len(pop.tos), n)]
    hops = 4 + (mix(h, S_HOPS) % np.uint64(20)).astype(np.int64)
    p.ttl[:] = np.clip(pop.ttl - hops, 1, 255)
    p.df[:] = pop.df
    p.flags[:] = SYN

    seq = rng.integers(0, 2**32, n, dtype=np.uint64)
    if pop.kind == "mirai":  # only the population's Mirai-fingerprinted hosts set seq = dst
        p.seq[:] = np.where(mirai, p.dst, seq)
    else:
        p.seq[:] = p.dst if pop.seq == "dst" else seq
    p.ip_id[:] = _ip_ids(pop, p, h, rng)

    if pop.proto == "udp":
        p.template[:] = t.T_UDP_PROBE
        if pop.kind == "bittorrent":
            p.template[:] = np.where(rng.random(n) < 0.7, t.T_UDP_DHT, t.T_UDP_UTP)
    else:
        p.template[:] = t.TCP_TEMPLATE[pop.options]
    return p, stats


def _ip_ids(pop: Population, p: Packets, h: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(p)
    if pop.ip_id == "zmap":
        return np.full(n, 54321, np.int64)
    if pop.ip_id == "masscan":
        return (p.dst.astype(np.int64) ^ p.dport.astype(np.int64) ^ p.seq.astype(np.int64)) \
            & 0xFFFF
    if pop.ip_id == "incremental":
        order = np.argsort(p.ts, kind="stable")
        counter = np.empty(n, np.int64)
        counter[order] = np.arange(n)
        return ((mix(h, S_TTL0) & np.uint64(0xFFFF)).astype(np.int64) + counter) & 0xFFFF
    return rng.integers(0, 65536, n)


@dataclass
class Attacks:
    """DDoS attacks whose victims answer into the telescope, planned for the whole run."""

    victim_local: np.ndarray
    start: np.ndarray
    end: np.ndarray
    rate: np.ndarray          # backscatter events per second at the telescope
    victim_pps: np.ndarray    # the attack's packet rate at the victim
    service: np.ndarray       # index into the population's services
    port: np.ndarray

    def __len__(self) -> int:
        return len(self.start)


def plan_attacks(pop: Population, scenario: Scenario, scale: float,
                 rng: np.random.Generator) -> Attacks:
    """Attack start, duration and intensity heavy-tailed as in Moore et al. (log-normal fits:
    median about 10 minutes, a tail of hours; intensities spanning orders of magnitude)."""
    days = scenario.duration_ns / DAY_NS
    count = int(rng.poisson(pop.attacks_per_day * days * scale))
    duration = pop.duration_median_s * np.exp(pop.duration_sigma * rng.standard_normal(count))
    duration_ns = (duration * NS).astype(np.int64)
    start = rng.integers(scenario.start_ns - int(pop.duration_median_s * NS),
                         scenario.end_ns, count) if count else np.zeros(0, np.int64)
    pps = pop.attack_rate_median_pps * np.exp(pop.attack_rate_sigma * rng.standard_normal(count))
    weights = np.array([s.weight for s in pop.services], float)
    service = rng.choice(len(pop.services), count, p=weights / weights.sum())
    port = np.array([pop.services[s].ports[rng.integers(len(pop.services[s].ports))]
                     for s in service], np.int64)
    return Attacks(victim_local=np.arange(count, dtype=np.int64), start=start,
                   end=start + duration_ns, rate=pps * scenario.share, victim_pps=pps,
                   service=service.astype(np.int64), port=port)


ROUTER_OFFSET = POPULATION_STRIDE // 2  # routers that send time-exceeded for a victim
VICTIM_WINDOWS = np.array([29200, 65160, 64240, 8192, 65535, 14480], np.int64)
RETRANSMIT_OFFSETS_S = np.array([1, 3, 7, 15, 31, 63, 127, 255, 511, 1023], np.int64)


def backscatter(pop: Population, pop_index: int, attacks: Attacks, t0: int, t1: int,
                space: AddressSpace, scope: Telescope, rng: np.random.Generator) -> Packets:
    """Replies of the victims attacked during ``[t0, t1)`` to spoofed telescope addresses.

    A SYN-ACK is retransmitted ``retransmissions`` times with exponential backoff (1, 2, 4, ...
    seconds, as Linux does); retransmissions may fall after ``t1`` (the engine carries them)."""
    overlap = np.clip(np.minimum(attacks.end, t1) - np.maximum(attacks.start, t0), 0, None)
    events = rng.poisson(attacks.rate * overlap / NS)
    live = np.flatnonzero(events)
    if live.size == 0:
        return Packets.empty(0)
    events = events[live]
    which = np.repeat(live, events)
    n_events = len(which)
    lo = np.maximum(attacks.start[which], t0)
    hi = np.minimum(attacks.end[which], t1)
    when = lo + (rng.random(n_events) * (hi - lo)).astype(np.int64)
    responses = [pop.services[s].response for s in attacks.service[which]]
    response = np.array(responses)
    retrans = np.where(response == "syn-ack", pop.retransmissions, 0)
    copies = 1 + retrans
    event_of = np.repeat(np.arange(n_events), copies)
    attempt = np.arange(len(event_of)) - np.repeat(np.cumsum(copies) - copies, copies)
    n = len(event_of)
    p = Packets.empty(n)
    a = which[event_of]
    offsets = np.concatenate([[0], RETRANSMIT_OFFSETS_S])[attempt] * NS
    p.ts[:] = when[event_of] + offsets
    victim = host_ids(pop_index, attacks.victim_local[a])
    kind = response[event_of]
    router = kind == "icmp-time-exceeded"
    p.host[:] = np.where(router, victim + ROUTER_OFFSET, victim)
    p.src[:] = space.addresses(p.host)
    victim_addr = space.addresses(victim)
    spoofed = scope.addresses(rng, n_events)[event_of]
    spoofed_port = rng.integers(1024, 65536, n_events)[event_of]
    p.dst[:] = spoofed
    p.dport[:] = spoofed_port
    p.sport[:] = attacks.port[a]
    p.seq[:] = rng.integers(0, 2**32, n_events, dtype=np.uint64)[event_of]
    p.ack[:] = rng.integers(0, 2**32, n_events, dtype=np.uint64)[event_of]
    hops = 4 + (mix(victim, S_HOPS) % np.uint64(20)).astype(np.int64)
    initial = np.where(uniform(victim, S_TTL0) < 0.8, 64, 128)
    p.ttl[:] = initial - hops
    p.ip_id[:] = rng.integers(0, 65536, n)
    p.df[:] = True
    p.win[:] = VICTIM_WINDOWS[(mix(victim, S_WIN) % np.uint64(len(VICTIM_WINDOWS)))
                              .astype(np.int64)]
    p.template[:] = t.T_TCP_NONE
    p.flags[:] = 0
    for name, flags, template in (("syn-ack", SYN_ACK, t.T_TCP_LINUX),
                                  ("rst-ack", RST_ACK, t.T_TCP_NONE), ("rst", RST, t.T_TCP_NONE)):
        sel = kind == name
        p.flags[sel] = flags
        p.template[sel] = template
    p.win[kind == "rst"] = 0
    p.ack[(p.flags & 0x10) == 0] = 0  # no ACK flag, no acknowledgment number
    dns = kind == "dns"
    p.template[dns] = t.T_UDP_DNS
    echo = kind == "icmp-echo-reply"
    p.template[echo] = t.T_ICMP_ECHO_REPLY
    unreachable = kind == "icmp-port-unreachable"
    error = unreachable | router
    p.template[error] = t.T_ICMP_ERROR
    p.icmp_type[unreachable] = 3
    p.icmp_code[unreachable] = 3
    p.icmp_type[router] = 11
    p.inner_src[error] = spoofed[error]
    p.inner_dst[error] = victim_addr[error]
    p.inner_proto[error] = np.where(unreachable[error], 17, 6)
    p.inner_sport[error] = spoofed_port[error]
    p.inner_dport[error] = attacks.port[a][error]
    return p
