"""Victims under attack, from the DDoS verdicts (Moore et al., ACM TOCS 2006).

A victim's replies to spoofed sources reach the telescope in proportion to the telescope's
share of the address space, so an observed reply rate scaled by ``2**32 / telescope size``
estimates the attack rate at the victim (assuming uniformly spoofed sources, one reply per
attack packet). Attacks are Moore et al.'s flows: a victim's backscatter packets with no gap
longer than ``gap_s`` (default 300 s, their flow timeout).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from darkscope.backscatter import _kernels
from darkscope.backscatter.features import NS
from darkscope.backscatter.telescope import Telescope
from darkscope.errors import DarkscopeError

DEFAULT_GAP_S = 300


def victims(table: pa.Table, verdicts: pa.Table, telescope: Telescope,
            gap_s: float = DEFAULT_GAP_S, max_ports: int = 8) -> pa.Table:
    """One row per attack: victim, start, end, packets, ports (the victim's reply ports,
    most used first), distinct telescope (address, port) targets, observed packets/s, and
    the estimated attack packets/s at the victim (distinct targets per second / share)."""
    windows = ddos_windows(verdicts)
    table = _ipv4(table)
    src, ts, rows = _join(table, windows)
    return _attacks(src[rows], ts[rows],
                    table["sport"].to_numpy(zero_copy_only=False)[rows],
                    table["icmp_type"].to_numpy(zero_copy_only=False)[rows],
                    table["dst"].to_numpy()[rows],
                    table["dport"].cast(pa.int64()).fill_null(-1).to_numpy()[rows],
                    telescope, gap_s, max_ports)


def ddos_windows(verdicts: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(src, start ns, end ns) of the DDoS host-windows, sorted by (src, start)."""
    missing = {"src", "window_start", "window_end", "verdict"} - set(verdicts.column_names)
    if missing:
        raise DarkscopeError(f"verdicts lack column(s) {', '.join(sorted(missing))}")
    ddos = verdicts.filter(pc.and_(pc.equal(verdicts["verdict"], "ddos"),
                                   pc.is_valid(verdicts["src"])))
    try:
        w_src = ddos["src"].cast(pa.int64()).to_numpy()
        w_start = ddos["window_start"].cast(pa.timestamp("ns", tz="UTC")).cast(
            pa.int64()).to_numpy()
        w_end = ddos["window_end"].cast(pa.timestamp("ns", tz="UTC")).cast(
            pa.int64()).to_numpy()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DarkscopeError(f"verdicts: src/window columns of unexpected type ({exc})") from None
    order = np.lexsort((w_start, w_src))
    return w_src[order], w_start[order], w_end[order]


def _ipv4(table: pa.Table) -> pa.Table:
    """IPv4 sources only: Moore et al.'s scaling assumes sources spoofed uniformly over the
    IPv4 space; an IPv6 victim's replies to a /48 say nothing comparable (see docs)."""
    return table.filter(pc.is_valid(table["src"]))


def _join(table: pa.Table, windows: tuple[np.ndarray, np.ndarray, np.ndarray]
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows of ``table`` inside a DDoS window, in (src, time) order."""
    src = table["src"].to_numpy().astype(np.int64)
    ts = table["ts"].cast(pa.int64()).to_numpy()
    order = np.lexsort((ts, src))
    inside = _kernels.in_windows(src[order], ts[order], *windows)
    return src, ts, order[inside]


def ddos_packets(table: pa.Table, windows: tuple[np.ndarray, np.ndarray, np.ndarray]
                 ) -> pa.Table:
    """Only the packets of DDoS host-windows (to collect them batch by batch)."""
    table = _ipv4(table)
    _, _, rows = _join(table, windows)
    return table.take(pa.array(np.sort(rows)))


def _attacks(src: np.ndarray, ts: np.ndarray, sport: np.ndarray, icmp: np.ndarray,
             dst: np.ndarray, dport: np.ndarray, telescope: Telescope, gap_s: float,
             max_ports: int) -> pa.Table:
    new = np.ones(len(src), bool)
    if len(src) > 1:
        new[1:] = (src[1:] != src[:-1]) | (ts[1:] - ts[:-1] > gap_s * NS)
    first = np.flatnonzero(new)
    attack = np.cumsum(new) - 1
    packets = np.diff(np.append(first, len(src)))
    start = ts[first]
    end = ts[np.append(first[1:], len(src)) - 1] if len(src) else ts[:0]
    duration = np.maximum((end - start) / NS, 1.0)
    observed = packets / duration
    # A SYN-ACK is retransmitted (Linux: 5 times) to the same spoofed address and port: count
    # each (telescope address, port) once per attack, so the estimate is of attack packets.
    by = np.lexsort((dport, dst, attack))
    fresh = np.ones(len(by), bool)
    fresh[1:] = (np.diff(attack[by]) != 0) | (np.diff(dst[by].astype(np.int64)) != 0) \
        | (np.diff(dport[by]) != 0)
    replies = np.bincount(attack[by][fresh], minlength=len(first))
    ports = _port_lists(attack, sport, icmp, len(first), max_ports)
    return pa.table({
        "victim": pa.array(src[first].astype(np.uint32), pa.uint32()),
        "start": pa.array(start, pa.timestamp("ns", tz="UTC")),
        "end": pa.array(end, pa.timestamp("ns", tz="UTC")),
        "packets": pa.array(packets, pa.int64()),
        "ports": pa.array(ports, pa.string()),
        "distinct_targets": pa.array(replies, pa.int64()),
        "observed_pps": pa.array(observed, pa.float64()),
        "estimated_attack_pps": pa.array(replies / duration / telescope.share, pa.float64()),
    })


def _port_lists(attack: np.ndarray, sport: np.ndarray, icmp: np.ndarray, n: int,
                max_ports: int) -> list[str]:
    """Per attack, its reply ports as text ('443,80'; 'icmp-<type>' for ICMP), most packets
    first (text, so CSV and JSON outputs keep it); one group-by over (attack, port)."""
    label = np.where(np.isnan(sport.astype(float)),
                     -1 - np.nan_to_num(icmp.astype(float), nan=255).astype(np.int64),
                     np.nan_to_num(sport.astype(float)).astype(np.int64))
    if len(attack) == 0:
        return []
    pairs, counts = np.unique(np.stack([attack, label], 1), axis=0, return_counts=True)
    order = np.lexsort((-counts, pairs[:, 0]))
    pairs = pairs[order]
    out: list[str] = [""] * n
    bounds = np.searchsorted(pairs[:, 0], np.arange(n + 1))
    for a in range(n):  # one short list per attack (at most max_ports), not per packet
        chosen = pairs[bounds[a]:bounds[a + 1], 1][:max_ports]
        out[a] = ",".join(str(p) if p >= 0 else f"icmp-{-1 - p}" for p in chosen.tolist())
    return out
