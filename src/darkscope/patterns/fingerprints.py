"""Per-packet tool fingerprints and per-host attribution.

Each fingerprint is a vectorised test of one packet's fields against what a tool's public source
code does when it builds a probe (sources in docs/patterns.md):

- **Mirai** (``scanner.c`` of the published source): a TCP SYN whose sequence number is the
  destination address, to port 23 (or 2323 for one probe in ten), from a source port >= 1024,
  without TCP options.
- **ZMap** (``probe_modules/packet.c``, ``module_tcp_synscan.c``): IP identification fixed at
  54321 before 4.1; since 4.1 (random IP IDs) its SYN is still recognisable as window 65535 with
  a single MSS option.
- **Masscan** (``templ-pkt.c``/``proto-tcp``): IP identification = (dst ^ dport ^ seq) & 0xffff,
  stable across versions.

A host is attributed to the family that more than ``threshold`` of its packets match.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from darkscope.patterns.catalogue import Columns

#: Packet columns the fingerprints read.
FINGERPRINT_COLUMNS = ("proto", "tcp_flags", "seq", "dst", "sport", "dport", "ip_id", "win",
                       "tcp_layout")


def _tcp_syn(cols: Columns) -> np.ndarray:
    return (cols.valid["tcp_flags"] & (cols["proto"] == 6)
            & ((cols["tcp_flags"] & 0x12) == 0x02))


def mirai(cols: Columns) -> np.ndarray:
    dport = cols["dport"]
    return (_tcp_syn(cols) & (cols["seq"] == cols["dst"]) & ((dport == 23) | (dport == 2323))
            & (cols["sport"] >= 1024) & cols.no_options)


def zmap(cols: Columns) -> np.ndarray:
    fixed_id = cols.valid["ip_id"] & (cols["ip_id"] == 54321)
    window_mss = cols.valid["win"] & (cols["win"] == 65535) & cols.mss_only
    return _tcp_syn(cols) & (fixed_id | window_mss)


def masscan(cols: Columns) -> np.ndarray:
    derived = (cols["dst"] ^ cols["dport"].astype(np.uint32) ^ cols["seq"]) & 0xFFFF
    return _tcp_syn(cols) & cols.valid["ip_id"] & (cols["ip_id"].astype(np.uint32) == derived)


#: Family name -> per-packet test. Add a tool by adding an entry.
FINGERPRINTS: dict[str, Callable[[Columns], np.ndarray]] = {
    "mirai": mirai, "zmap": zmap, "masscan": masscan,
}
FAMILIES = ("unknown", *FINGERPRINTS)      # family code = index


def attribute(packets: np.ndarray, matches: np.ndarray,
              threshold: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Family code (index into FAMILIES) and match share per host.

    ``matches`` is hosts x fingerprints (packets that matched each); the best-matching family wins
    when its share of the host's packets is above ``threshold``; otherwise ``unknown`` with the
    best share.
    """
    if matches.shape[1] == 0:
        return np.zeros(len(packets), np.uint8), np.zeros(len(packets))
    best = np.argmax(matches, axis=1)
    share = matches[np.arange(len(packets)), best] / np.maximum(packets, 1)
    family = np.where(share > threshold, best + 1, 0).astype(np.uint8)
    return family, share
