"""Simulator speed: packets written to pcap per second, against building the same kind of
traffic with scapy and with dpkt (what a user would otherwise script), in one run.

    python benchmarks/simulate.py [--scale 0.05]

darkscope: one day of the ``mirai-2016`` scenario around its peak (2016-09-20) at ``--scale``,
on one core (NUMBA_NUM_THREADS=1 is set below). Peers: Mirai-like SYN frames built one by one with
scapy (``wrpcap``) and with dpkt (``dpkt.pcap.Writer``), on a slice.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

from darkscope.simulate import load_scenario
from darkscope.simulate.engine import Simulation
from darkscope.timeutil import parse_duration, parse_instant


def scapy_rate(path: Path, n: int) -> float:
    from scapy.all import IP, TCP, Ether, wrpcap

    start = time.perf_counter()
    frames = []
    for _ in range(n):
        dst = f"198.51.{random.randrange(256)}.{random.randrange(256)}"
        frames.append(Ether() / IP(src="203.0.113.5", dst=dst, ttl=50)
                      / TCP(sport=40000, dport=23, flags="S", window=1320))
    wrpcap(str(path), frames)
    return n / (time.perf_counter() - start)


def dpkt_rate(path: Path, n: int) -> float:
    import dpkt

    start = time.perf_counter()
    with open(path, "wb") as handle:
        writer = dpkt.pcap.Writer(handle)
        for i in range(n):
            dst = bytes([198, 51, random.randrange(256), random.randrange(256)])
            tcp = dpkt.tcp.TCP(sport=40000, dport=23, flags=dpkt.tcp.TH_SYN, win=1320,
                               seq=int.from_bytes(dst, "big"))
            ip = dpkt.ip.IP(src=bytes([203, 0, 113, 5]), dst=dst, ttl=50, p=6, data=tcp)
            ip.len = 40
            eth = dpkt.ethernet.Ethernet(data=ip)
            writer.writepkt(bytes(eth), ts=1_474_329_600 + i * 1e-3)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.05)
    args = parser.parse_args()
    scenario = dataclasses.replace(load_scenario("mirai-2016"),
                                   start_ns=parse_instant("2016-09-20"),
                                   duration_ns=parse_duration("1d"))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "day.pcap"
        Simulation(scenario, seed=1, scale=0.001).run(out, overwrite=True)  # warm-up
        best = None
        for _ in range(3):
            result, _truth = Simulation(scenario, seed=1, scale=args.scale).run(
                out, overwrite=True)
            rate = result.packets / result.seconds
            best = rate if best is None else max(best, rate)
        size = out.stat().st_size
        peers = {"scapy (20,000 packets)": scapy_rate(Path(tmp) / "s.pcap", 20_000),
                 "dpkt (100,000 packets)": dpkt_rate(Path(tmp) / "d.pcap", 100_000)}
    print(f"mirai-2016, 2016-09-20, scale {args.scale}: {result.packets:,} packets, "
          f"{result.hosts:,} hosts, {size / 1e6:.0f} MB")
    print(f"  {'writer':28} {'packets/s':>12} {'darkscope is':>14}")
    print(f"  {'darkscope simulate (1 core)':28} {best:12,.0f}")
    for name, rate in peers.items():
        print(f"  {name:28} {rate:12,.0f} {best / rate:13,.0f}x")
    print(f"  goal: >= 2,000,000 packets/s on one core: {'met' if best >= 2e6 else 'NOT met'}")


if __name__ == "__main__":
    main()
