"""Capture reading: darkscope vs dpkt, scapy and tshark, and the raw read limit, in one run.

    python benchmarks/ingest.py [--packets 5000000] [--workdir /tmp/darkscope-bench]

Generates two captures (darknet-like 60-byte TCP SYN frames, and a mix of SYNs with options,
SYN-ACK backscatter, DNS responses and ICMP errors), then measures packets per second:
- raw: ``cat file > /dev/null`` from the page cache (the limit), and reading into one reused
  16 MiB buffer in-process, best of 5;
- darkscope: ``darkscope.packets.read`` on the whole file, best of 5 after a warm-up (each
  table dropped before the next read, so batches reuse pooled memory), and the first read of
  a new process (fresh pages; best of 3 processes);
- dpkt: ``dpkt.pcap.Reader`` + ``dpkt.ethernet.Ethernet`` per frame, reading the same header
  fields, on a slice (the way its users use it);
- scapy: ``PcapReader`` with full dissection, on a smaller slice;
- tshark: ``tshark -T fields`` with 10 fields, on a slice (if installed).
Ratios are what to compare: absolute times on a shared 2-core machine are noise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import darkscope.packets as packets
from _captures import mixed_frames, syn_frames, write_pcap


def best_of(runs: int, func) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def cat_to_null(path: Path) -> None:
    """The limit as shell users measure it: ``cat file > /dev/null``."""
    with open(os.devnull, "wb") as null:
        subprocess.run(["cat", str(path)], stdout=null, check=True)


def raw_read(path: Path) -> None:
    buf = bytearray(1 << 24)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as handle:
        while handle.readinto(view):
            pass


_FIRST_READ = """
import sys, time
import darkscope.packets as packets
from darkscope.data import sample_capture
packets.read(sample_capture())  # loads the compiled walkers from their cache
start = time.perf_counter()
packets.read(sys.argv[1])
print(time.perf_counter() - start)
"""


def first_read_in_new_process(path: Path) -> float:
    done = subprocess.run([sys.executable, "-c", _FIRST_READ, str(path)], check=True,
                          capture_output=True, text=True)
    return float(done.stdout.split()[-1])


def dpkt_fields(path: Path, limit: int) -> int:
    import dpkt

    n = 0
    total = 0
    with open(path, "rb") as handle:
        for _ts, buf in dpkt.pcap.Reader(handle):
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
            if isinstance(ip, dpkt.ip.IP):
                l4 = ip.data
                total += ip.src[0] + ip.dst[0] + ip.ttl + ip.tos + ip.id + ip.len
                if isinstance(l4, dpkt.tcp.TCP):
                    total += l4.sport + l4.dport + l4.seq + l4.ack + l4.flags + l4.win
                elif isinstance(l4, dpkt.udp.UDP):
                    total += l4.sport + l4.dport
            n += 1
            if n >= limit:
                break
    return n


def scapy_dissect(path: Path, limit: int) -> int:
    from scapy.all import PcapReader

    n = 0
    with PcapReader(str(path)) as reader:
        for pkt in reader:
            _ = pkt.summary
            n += 1
            if n >= limit:
                break
    return n


def slice_capture(path: Path, out: Path, count: int) -> None:
    """First ``count`` records of a classic pcap (record lengths walked with numpy)."""
    data = np.fromfile(path, np.uint8)
    pos = 24
    for _ in range(count):
        caplen = int(data[pos + 8: pos + 12].view(np.uint32)[0])
        pos += 16 + caplen
    out.write_bytes(data[:pos].tobytes())


def tshark_fields(path: Path) -> float | None:
    if shutil.which("tshark") is None:
        return None
    fields = ["frame.time_epoch", "ip.src", "ip.dst", "ip.proto", "ip.ttl", "tcp.srcport",
              "tcp.dstport", "tcp.flags", "tcp.seq_raw", "tcp.window_size_value"]
    cmd = ["tshark", "-n", "-r", str(path), "-T", "fields"]
    for name in fields:
        cmd += ["-e", name]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def measure(name: str, path: Path, n: int, workdir: Path, slices: dict[str, int]) -> None:
    size = path.stat().st_size
    raw_read(path)  # into the page cache
    t_cat = best_of(5, lambda: cat_to_null(path))
    t_raw = best_of(5, lambda: raw_read(path))
    packets.read(path)  # warm-up (compiles on the first run ever, then cached)
    t_ds = best_of(5, lambda: packets.read(path))
    # Each table above is dropped before the next read, so its memory is reused (as when a
    # process reads capture after capture); a new process's first read gets fresh pages.
    t_fresh = min(first_read_in_new_process(path) for _ in range(3))
    rows = {"cat > /dev/null (limit)": n / t_cat, "readinto 16 MiB buffer": n / t_raw,
            "darkscope.packets.read": n / t_ds,
            "darkscope, first read of a process": n / t_fresh}

    for peer, count in slices.items():
        sliced = workdir / f"{name}-{count}.pcap"
        if not sliced.exists():
            slice_capture(path, sliced, count)
        if peer == "dpkt":
            t = best_of(1, lambda: dpkt_fields(sliced, count))  # noqa: B023
        elif peer == "scapy":
            t = best_of(1, lambda: scapy_dissect(sliced, count))  # noqa: B023
        else:
            t_tshark = tshark_fields(sliced)
            if t_tshark is None:
                print("  tshark: not installed (apt-get install tshark)")
                continue
            t = t_tshark
        rows[f"{peer} (on {count:,} packets)"] = count / t

    ds_pps = rows["darkscope.packets.read"]
    print(f"\n{name}: {n:,} packets, {size / 1e6:.0f} MB")
    print(f"  {'reader':34} {'packets/s':>14} {'darkscope is':>14}")
    for label, pps in rows.items():
        ratio = "" if label == "darkscope.packets.read" else f"{ds_pps / pps:10.2f}x"
        print(f"  {label:34} {pps:14,.0f} {ratio:>14}")
    dpkt_key = next(k for k in rows if k.startswith("dpkt"))
    cat = rows["cat > /dev/null (limit)"]
    fresh = rows["darkscope, first read of a process"]
    print(f"  goals: >= 100x dpkt: {ds_pps / rows[dpkt_key]:.0f}x; "
          f">= 1/4 of the raw read (cat): {ds_pps / cat:.2f} (first read: {fresh / cat:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=5_000_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/darkscope-bench"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    n = args.packets
    syn = args.workdir / f"syn-{n}.pcap"
    mixed = args.workdir / f"mixed-{n}.pcap"
    if not syn.exists():
        write_pcap(syn, [syn_frames(n)])
    if not mixed.exists():
        write_pcap(mixed, mixed_frames(n))
    slices = {"dpkt": 200_000, "scapy": 20_000, "tshark": 200_000}
    measure("60-byte TCP SYN frames", syn, n, args.workdir, slices)
    measure("mixed traffic", mixed, n, args.workdir, slices)


if __name__ == "__main__":
    main()
