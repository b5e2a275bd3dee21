"""The simulation loop: time chunks in order, every population's packets, pcap out, truth kept.

Each chunk (at most an hour) draws its packets from generators seeded by (seed, population,
chunk), so a run is reproducible byte for byte and memory stays bounded by one chunk's packets
plus the hosts seen so far (for the truth table).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from darkscope.errors import UsageError
from darkscope.io import atomic_path, check_output, write_table
from darkscope.progress import Tracker
from darkscope.simulate import models
from darkscope.simulate.frames import PCAP_HEADER, pcap_records
from darkscope.simulate.hosts import POPULATION_STRIDE, AddressSpace
from darkscope.simulate.models import Attacks, Telescope
from darkscope.simulate.packets import Packets
from darkscope.simulate.scenario import DAY_NS, Population, Scenario, hosts_on_day
from darkscope.timeutil import NS

CHUNK_NS = 3600 * NS
TIMESTAMP = pa.timestamp("ns", tz="UTC")


@dataclass
class SimulationResult:
    packets: int
    hosts: int
    attacks: int
    seconds: float
    capture: Path


class _Truth:
    """Per-host first/last seen and packet counts, merged day by day (bounded by hosts)."""

    def __init__(self) -> None:
        self.host = np.zeros(0, np.int64)
        self.first = np.zeros(0, np.int64)
        self.last = np.zeros(0, np.int64)
        self.count = np.zeros(0, np.int64)
        self._pending: list[tuple[np.ndarray, ...]] = []

    @staticmethod
    def _group(host: np.ndarray, first: np.ndarray, last: np.ndarray,
               count: np.ndarray) -> tuple[np.ndarray, ...]:
        order = np.argsort(host)
        host, first, last, count = host[order], first[order], last[order], count[order]
        starts = np.flatnonzero(np.r_[True, host[1:] != host[:-1]])
        return (host[starts], np.minimum.reduceat(first, starts),
                np.maximum.reduceat(last, starts), np.add.reduceat(count, starts))

    def add(self, p: Packets) -> None:
        if len(p):
            self._pending.append(self._group(p.host, p.ts, p.ts, np.ones(len(p), np.int64)))

    def add_stats(self, stats: models.HostStats) -> None:
        if len(stats.host):
            self._pending.append((stats.host, stats.first, stats.last, stats.count))

    def merge(self) -> None:
        if self._pending:
            parts = [(self.host, self.first, self.last, self.count), *self._pending]
            self.host, self.first, self.last, self.count = self._group(
                *(np.concatenate([part[i] for part in parts]) for i in range(4)))
            self._pending = []


def _pop_rng(seed: int, *keys: int) -> np.random.Generator:
    """An independent stream per (seed, population, chunk or purpose)."""
    return np.random.default_rng([seed, *keys])


class Simulation:
    def __init__(self, scenario: Scenario, seed: int = 0, scale: float = 1.0) -> None:
        if scale <= 0:
            raise UsageError("--scale must be positive")
        if seed < 0:
            raise UsageError("--seed must be a non-negative integer")
        if len(scenario.populations) * POPULATION_STRIDE >= 2**32 - POPULATION_STRIDE:
            raise UsageError("too many populations in one scenario")
        self.scenario = scenario
        self.seed = seed
        self.scale = scale
        self.space = AddressSpace(seed, scenario.prefix)
        self.scope = Telescope(int(scenario.prefix.network_address),
                               scenario.prefix.num_addresses)
        self.attacks: dict[int, Attacks] = {
            i: models.plan_attacks(pop, scenario, scale, _pop_rng(seed, i, 0xA77AC4, 0))
            for i, pop in enumerate(scenario.populations) if pop.is_backscatter}
        self._is_backscatter = np.array([p.is_backscatter for p in scenario.populations])
        self._offsets = [0.0] * len(scenario.populations)
        self._windows: list[tuple[int, int]] = [(0, 0)] * len(scenario.populations)
        self._day = None

    def _start_day(self, day: int) -> None:
        """Advance every population's sliding window of active hosts to ``day``."""
        if self._day is not None:
            for i, pop in enumerate(self.scenario.populations):
                lo, hi = self._windows[i]
                self._offsets[i] += pop.churn * (hi - lo)
        self._day = day
        for i, pop in enumerate(self.scenario.populations):
            count = hosts_on_day(pop.daily_hosts, day * DAY_NS) * self.scale
            offset = self._offsets[i]
            self._windows[i] = (int(offset), int(offset) + round(count))

    def _active(self, pop: Population, t0: int, t1: int) -> tuple[int, int]:
        lo = max(t0, pop.start_ns) if pop.start_ns is not None else t0
        hi = min(t1, pop.end_ns) if pop.end_ns is not None else t1
        return lo, hi

    def chunk(self, index: int, t0: int, t1: int, truth: _Truth) -> Packets:
        """Every population's packets in ``[t0, t1)``; scanners' host statistics go straight
        to ``truth`` (backscatter may spill past ``t1`` and is counted when written)."""
        day = t0 // DAY_NS
        if day != self._day:
            self._start_day(day)
        parts = []
        for i, pop in enumerate(self.scenario.populations):
            lo, hi = self._active(pop, t0, t1)
            if hi <= lo:
                continue
            rng = _pop_rng(self.seed, i, index)
            if pop.is_backscatter:
                parts.append(models.backscatter(pop, i, self.attacks[i], lo, hi, self.space,
                                                self.scope, rng))
                continue
            first, last = self._windows[i]
            if last <= first:
                continue
            hosts = models.host_ids(i, np.arange(first, last))
            expected = models.daily_rate(pop, hosts, day, self.scenario.share) \
                * (hi - lo) / DAY_NS
            if pop.diurnal:
                expected *= models.diurnal_factor(self.scenario, (lo + hi) // 2)
            counts = rng.poisson(expected)
            packets, stats = models.scanning(pop, hosts, counts, lo, hi, self.space, self.scope,
                                             rng)
            parts.append(packets)
            truth.add_stats(stats)
        return Packets.concat(parts)

    def run(self, capture: str | Path, *, overwrite: bool = False,
            tracker: Tracker | None = None) -> tuple[SimulationResult, _Truth]:
        tracker = tracker or Tracker(None, None)
        scenario = self.scenario
        started = time.perf_counter()
        truth = _Truth()
        total = 0
        carry = Packets.empty(0)
        frame_rng = np.random.default_rng([self.seed, 0xF4A3E])
        with atomic_path(capture, overwrite) as tmp, open(tmp, "wb") as out:
            out.write(PCAP_HEADER)
            t0, index = scenario.start_ns, 0
            while t0 < scenario.end_ns:
                t1 = min(t0 + CHUNK_NS, scenario.end_ns, (t0 // DAY_NS + 1) * DAY_NS)
                p = Packets.concat([carry, self.chunk(index, t0, t1, truth)])
                p = p.take(np.argsort(p.ts))
                cut = int(np.searchsorted(p.ts, t1))
                now = p.slice(0, cut)
                carry = p.slice(cut, int(np.searchsorted(p.ts, scenario.end_ns)))
                out.write(pcap_records(now, frame_rng))
                truth.add(now.take(np.flatnonzero(self._is_backscatter[
                    now.host // POPULATION_STRIDE - 1])))
                total += len(now)
                if t1 % DAY_NS == 0:
                    truth.merge()
                tracker.advance(t1 - t0)
                t0, index = t1, index + 1
        truth.merge()
        result = SimulationResult(packets=total, hosts=len(truth.host),
                                  attacks=sum(len(a) for a in self.attacks.values()),
                                  seconds=time.perf_counter() - started, capture=Path(capture))
        return result, truth

    def truth_table(self, truth: _Truth) -> pa.Table:
        """One row per source host seen: its address, kind, family and DDoS flag."""
        pops = self.scenario.populations
        pop_index = truth.host // POPULATION_STRIDE - 1
        local = truth.host % POPULATION_STRIDE
        kind = np.array([pops[i].kind for i in pop_index], dtype=object)
        family = np.array([pops[i].family for i in pop_index], dtype=object)
        name = np.array([pops[i].name for i in pop_index], dtype=object)
        mirai_pop = kind == "mirai"
        if mirai_pop.any():
            shares = np.array([pops[i].mirai_share for i in pop_index[mirai_pop]])
            fingerprinted = models.uniform(truth.host[mirai_pop], models.S_MIRAI) < shares
            kind[np.flatnonzero(mirai_pop)[~fingerprinted]] = "scanner"
        for i, attacks in self.attacks.items():
            mine = np.flatnonzero(pop_index == i)
            victim = local[mine] % models.ROUTER_OFFSET
            responses = np.array([pops[i].services[s].response for s in attacks.service])
            family[mine] = responses[victim] if len(responses) else family[mine]
        return pa.table({
            "src": pa.array(self.space.addresses(truth.host), pa.uint32()),
            "kind": pa.array(kind.tolist(), pa.string()),
            "family": pa.array(family.tolist(), pa.string()),
            "population": pa.array(name.tolist(), pa.string()),
            "ddos": pa.array(kind == "backscatter", pa.bool_()),
            "first_seen": pa.array(truth.first, TIMESTAMP),
            "last_seen": pa.array(truth.last, TIMESTAMP),
            "packets": pa.array(truth.count, pa.int64()),
        })

    def attacks_table(self, truth: _Truth) -> pa.Table:
        """One row per planned attack: victim, the address the telescope sees, timing, size."""
        rows: dict[str, list] = {k: [] for k in ("attack_id", "victim", "sender", "response",
                                                 "port", "start", "end", "victim_pps",
                                                 "packets")}
        seen = dict(zip(truth.host.tolist(), truth.count.tolist(), strict=True))
        for i, attacks in self.attacks.items():
            pop = self.scenario.populations[i]
            victims = models.host_ids(i, attacks.victim_local)
            responses = [pop.services[s].response for s in attacks.service]
            routers = np.array([r == "icmp-time-exceeded" for r in responses], bool)
            senders = np.where(routers, victims + models.ROUTER_OFFSET, victims)
            rows["attack_id"] += [f"{pop.name}-{k}" for k in range(len(attacks))]
            rows["victim"] += self.space.addresses(victims).tolist()
            rows["sender"] += self.space.addresses(senders).tolist()
            rows["response"] += responses
            rows["port"] += attacks.port.tolist()
            rows["start"] += attacks.start.tolist()
            rows["end"] += attacks.end.tolist()
            rows["victim_pps"] += attacks.victim_pps.tolist()
            rows["packets"] += [seen.get(int(s), 0) for s in senders]
        return pa.table({
            "attack_id": pa.array(rows["attack_id"], pa.string()),
            "victim": pa.array(rows["victim"], pa.uint32()),
            "sender": pa.array(rows["sender"], pa.uint32()),
            "response": pa.array(rows["response"], pa.string()),
            "port": pa.array(rows["port"], pa.uint16()),
            "start": pa.array(rows["start"], TIMESTAMP),
            "end": pa.array(rows["end"], TIMESTAMP),
            "victim_pps": pa.array(rows["victim_pps"], pa.float64()),
            "packets": pa.array(rows["packets"], pa.int64()),
        })


def simulate(scenario: Scenario, capture: str | Path, *, truth: str | Path | None = None,
             attacks: str | Path | None = None, table: str | Path | None = None, seed: int = 0,
             scale: float = 1.0, overwrite: bool = False,
             tracker: Tracker | None = None) -> SimulationResult:
    """Run ``scenario`` and write the capture, and optionally the truth, attacks and packet
    tables (Parquet; CSV or JSON Lines by suffix)."""
    for path in (capture, truth, attacks, table):
        if path is not None:
            check_output(path, overwrite)
    simulation = Simulation(scenario, seed=seed, scale=scale)
    result, seen = simulation.run(capture, overwrite=overwrite, tracker=tracker)
    if truth is not None:
        write_table(simulation.truth_table(seen), truth, overwrite=overwrite)
    if attacks is not None:
        write_table(simulation.attacks_table(seen), attacks, overwrite=overwrite)
    if table is not None:
        from darkscope.packets.reader import CaptureReader
        from darkscope.packets.writer import write_packets

        partition = "none" if str(table).endswith(".parquet") else "hour"
        write_packets(CaptureReader(capture), table, partition=partition, overwrite=overwrite)
    return result
