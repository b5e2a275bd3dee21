"""The 17 per-host-window features of the backscatter detector (definitions: docs/backscatter.md).

A *host-window* is a source address and either a fixed time window (default one hour, aligned
to the epoch) or a run of N consecutive packets of the host. Everything is a plain relational
aggregation over the packet table (the docs give the SQL); the fast path computes it with hash
group-ids and one time-ordered pass (:mod:`._kernels`), no per-row Python.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

import numpy as np
import pyarrow as pa

from darkscope.backscatter import _kernels
from darkscope.backscatter.addresses import destinations, host_ids, ipv6_sources
from darkscope.errors import UsageError

FEATURE_VERSION = 1
NS = 1_000_000_000
DEFAULT_CONTEXT_S = 21600

BASE_NAMES = (
    "packet_count", "interval_mean", "interval_std",
    "sports", "pkts_per_sport_mean", "pkts_per_sport_std",
    "dsts", "pkts_per_dst_mean", "pkts_per_dst_std",
    "dports", "pkts_per_dport_mean", "pkts_per_dport_std",
    "dport_interval_mean", "dport_interval_std",
    "protocols",
)
VARIANTS = {"payload": ("payload_mean", "payload_std"),
            "dst-span": ("dst_span_mean", "dst_span_std")}
NO_PORT = 65536  # the one "port" value of packets without ports (ICMP, ...)


@dataclass(frozen=True)
class FeatureDefinition:
    """What a feature vector means; models store it and refuse data computed differently."""

    window_s: int | None = 3600
    window_packets: int | None = None
    variant: str = "dst-span"
    context_s: int | None = DEFAULT_CONTEXT_S
    context_below: int = 10
    version: int = FEATURE_VERSION

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise UsageError(f"feature variant must be one of {', '.join(VARIANTS)}, "
                             f"got {self.variant!r}")
        if (self.window_s is None) == (self.window_packets is None):
            raise UsageError("give exactly one of a time window or a packet-count window")
        if self.window_s is not None and self.window_s <= 0:
            raise UsageError("the time window must be positive")
        if self.window_packets is not None and self.window_packets <= 0:
            raise UsageError("the packet-count window must be positive")
        if (self.context_s == DEFAULT_CONTEXT_S and self.window_s is not None
                and self.context_s % self.window_s):  # the default: a multiple of the window
            object.__setattr__(self, "context_s", -(-self.context_s // self.window_s)
                               * self.window_s)
        if self.context_s is not None and (
                self.context_s <= 0
                or (self.window_s is not None and self.context_s % self.window_s)):
            raise UsageError("the context span must be a positive multiple of the time window")
        if self.context_below < 0:
            raise UsageError("the context threshold must not be negative")

    @property
    def names(self) -> tuple[str, ...]:
        return BASE_NAMES + VARIANTS[self.variant]

    def key(self) -> str:
        """A stable text form, compared on load."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_key(cls, text: str) -> FeatureDefinition:
        fields = json.loads(text)
        if "context_below" not in fields:  # saved before host context: judged without it
            fields.update(context_s=None, context_below=0)
        return cls(**fields)

    def describe(self) -> str:
        window = (f"{self.window_s} s windows" if self.window_s is not None
                  else f"windows of {self.window_packets} packets")
        context = (f"windows under {self.context_below} packets judged on their host's "
                   f"{self.context_s} s context" if self.context_s and self.context_below
                   else "no context")
        return f"features v{self.version}, {window}, 16-17 = {self.variant}, {context}"

    @property
    def chunk_s(self) -> int | None:
        """The time span that detection chunks never split (None: packet-count windows, which
        need the whole input at once)."""
        if self.window_s is None:
            return None
        return self.context_s if self.context_s and self.context_below else self.window_s


@dataclass
class HostWindows:
    """One row per host-window: identity, the feature matrix, and each packet's row."""

    src: np.ndarray            # uint32 (0 for an IPv6 host)
    window_start: np.ndarray   # int64 ns, inclusive
    window_end: np.ndarray     # int64 ns, exclusive
    packets: np.ndarray        # int64
    X: np.ndarray              # float64 (windows x 17)
    row_of_packet: np.ndarray  # int64, per input packet
    definition: FeatureDefinition
    host: np.ndarray           # per window, the packet table's dense host id (addresses.py)
    is6: np.ndarray            # bool: the host is an IPv6 source
    src6: np.ndarray           # (windows, 16) uint8: the IPv6 source (zeros for IPv4)

    def __len__(self) -> int:
        return len(self.src)


def _column(table: pa.Table, name: str, fill: int) -> np.ndarray:
    """A column as numpy in its own type; nulls replaced by ``fill`` (then as int64, since the
    fill may lie outside the type, e.g. 65536 for "no port")."""
    column = table[name]
    if column.null_count:
        column = column.cast(pa.int64()).fill_null(fill)
    return column.to_numpy()


def _time_order(ts: np.ndarray) -> np.ndarray:
    if ts.size < 2 or bool(np.all(ts[1:] >= ts[:-1])):
        return np.arange(ts.size, dtype=np.int64)
    return np.argsort(ts, kind="stable").astype(np.int64)


def _per_value(gid: np.ndarray, n_groups: int, values: np.ndarray, shift: int,
               counts: np.ndarray, expected: int = 0) -> tuple[np.ndarray, ...]:
    """Distinct values per group, mean/std of packets per value (GROUP BY g, v; then g),
    each row's (group, value) pair id, and each pair's first row."""
    pair, first = _kernels.factorize_pairs(gid, values, shift, expected)
    per_pair = np.bincount(pair, minlength=first.size).astype(np.float64)
    pair_group = gid[first]
    distinct = np.bincount(pair_group, minlength=n_groups).astype(np.float64)
    sq = np.bincount(pair_group, weights=per_pair * per_pair, minlength=n_groups)
    mean = counts / distinct
    std = np.sqrt(np.maximum(sq / distinct - mean * mean, 0.0))
    return distinct, mean, std, pair, first


def _moments(n: np.ndarray, total: np.ndarray, sq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population std; 0 and 0 where there is no value (never NaN)."""
    safe = np.maximum(n, 1)
    mean = np.where(n > 0, total / safe, 0.0)
    std = np.where(n > 0, np.sqrt(np.maximum(sq / safe - mean * mean, 0.0)), 0.0)
    return mean, std


def extract(table: pa.Table, definition: FeatureDefinition | None = None,
            host_of_row: np.ndarray | None = None) -> HostWindows:
    """Host-windows and their 17 features from a packet table (rows with an IPv4 or IPv6
    source and a timestamp). ``host_of_row``: host ids already given to these rows (so that
    windows of a part of a table keep the table's ids)."""
    definition = definition or FeatureDefinition()
    ts = table["ts"].cast(pa.int64()).to_numpy()
    src = _column(table, "src", 0)
    is6, src6 = ipv6_sources(table)
    host = host_ids(src, is6, src6) if host_of_row is None else host_of_row
    order = _time_order(ts)
    if definition.window_s is not None:
        window = ts // (definition.window_s * NS)
    else:
        dense, dense_first = _kernels.factorize_pairs(host, host, 0)
        window = _kernels.host_ranks(order, dense, dense_first.size) // \
            definition.window_packets
    gid, first = _kernels.factorize_pairs(host, window, 32)
    n_groups = first.size
    counts = np.bincount(gid, minlength=n_groups).astype(np.float64)

    sports, sport_mean, sport_std, _, _ = _per_value(
        gid, n_groups, _column(table, "sport", NO_PORT), 17, counts)
    dst = destinations(table, is6)
    # telescope traffic: most packets of a host go to a new address, so size for that
    dsts, dst_mean, dst_std, _, dst_first = _per_value(gid, n_groups, dst, 32, counts,
                                                       expected=len(dst) // 2)
    dports, dport_mean, dport_std, dport_pair, dport_first = _per_value(
        gid, n_groups, _column(table, "dport", NO_PORT), 17, counts)
    protocols = _kernels.distinct_small(gid, _column(table, "proto", 256), n_groups)

    g_n, g_sum, g_sq, p_n, p_sum, p_sq = _kernels.interval_sums(
        order, ts, gid, n_groups, dport_pair, dport_first.size)
    interval_mean, interval_std = _moments(g_n, g_sum, g_sq)
    dport_interval_mean, dport_interval_std = _moments(p_n, p_sum, p_sq)

    if definition.variant == "payload":
        payload = _column(table, "payload_len", 0).astype(np.float64)
        last_mean, last_std = _moments(counts, np.bincount(gid, weights=payload,
                                                            minlength=n_groups),
                                       np.bincount(gid, weights=payload * payload,
                                                   minlength=n_groups))
    else:
        pair_keys = (gid[dst_first].astype(np.uint64) << np.uint64(32)) | \
            dst[dst_first].astype(np.uint64)
        last_mean, last_std = _dst_spans(pair_keys, n_groups)

    X = np.column_stack([
        counts, interval_mean, interval_std, sports, sport_mean, sport_std, dsts, dst_mean,
        dst_std, dports, dport_mean, dport_std, dport_interval_mean, dport_interval_std,
        protocols, last_mean, last_std])
    lo, hi = _kernels.group_min_max(gid, ts, n_groups)
    if definition.window_s is not None:
        start = window[first] * (definition.window_s * NS)
        end = start + definition.window_s * NS
    else:
        start, end = lo, hi + 1
    src_out = src[first].astype(np.uint32)
    src_out[is6[first]] = 0
    return HostWindows(src=src_out, window_start=start.astype(np.int64),
                       window_end=end.astype(np.int64), packets=counts.astype(np.int64), X=X,
                       row_of_packet=gid, definition=definition,
                       host=np.asarray(host)[first].astype(np.int64), is6=is6[first],
                       src6=np.zeros((n_groups, 16), np.uint8) if src6 is None else src6[first])


def context_features(table: pa.Table, windows: HostWindows
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The vectors the classifier judges, and per window its host's packets in the context
    (0 where the window's own features are judged).

    A window with fewer than ``context_below`` packets is a fragment of its host's activity
    (a low-rate attack or scan cut by window edges): its own features hardly tell backscatter
    from scanning (two RST-ACKs and two UDP probes look alike), so when the host sent more in
    the window's context span (``context_s``, aligned to the epoch) the host's features over
    that span are judged instead. Same 17 definitions, a longer window.
    """
    definition = windows.definition
    X = windows.X.copy()
    context_packets = np.zeros(len(windows), np.int64)
    if not definition.context_s or not definition.context_below or len(windows) == 0:
        return X, context_packets
    span_ns = definition.context_s * NS
    hosts, host_of_window = np.unique(windows.host, return_inverse=True)
    sparse_host = np.bincount(host_of_window,
                              weights=windows.packets < definition.context_below,
                              minlength=len(hosts)) > 0
    needed = sparse_host[host_of_window[windows.row_of_packet]]
    if not needed.any():
        return X, context_packets
    context_definition = replace(definition, window_s=definition.context_s,
                                 window_packets=None, context_s=None)
    row_host = windows.host[windows.row_of_packet]
    spans = extract(table.filter(pa.array(needed)), context_definition, row_host[needed])
    span_keys = _span_keys(spans.host, spans.window_start, span_ns)
    order = np.argsort(span_keys)
    mine = _span_keys(windows.host, windows.window_start, span_ns)
    pos = order[np.minimum(np.searchsorted(span_keys[order], mine), len(order) - 1)]
    use = ((windows.packets < definition.context_below) & (span_keys[pos] == mine)
           & (spans.packets[pos] > windows.packets))
    X[use] = spans.X[pos[use]]
    context_packets[use] = spans.packets[pos[use]]
    return X, context_packets


def _span_keys(host: np.ndarray, start: np.ndarray, span_ns: int) -> np.ndarray:
    return (host.astype(np.uint64) << np.uint64(32)) | (start // span_ns).astype(np.uint64)


def _dst_spans(pair_keys: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean/std of the gaps between a group's distinct destination addresses in address order
    (the book-chapter variant of features 16-17); 0 and 0 for a single destination."""
    keys = np.sort(pair_keys)
    group = (keys >> np.uint64(32)).astype(np.int64)
    addr = (keys & np.uint64(0xFFFFFFFF)).astype(np.float64)
    same = group[1:] == group[:-1]
    gaps = (addr[1:] - addr[:-1])[same]
    owner = group[1:][same]
    n = np.bincount(owner, minlength=n_groups).astype(np.float64)
    total = np.bincount(owner, weights=gaps, minlength=n_groups)
    sq = np.bincount(owner, weights=gaps * gaps, minlength=n_groups)
    return _moments(n, total, sq)


def feature_table(windows: HostWindows) -> dict[str, np.ndarray]:
    """Columns src, window_start, window_end, packets and the named features."""
    columns: dict[str, np.ndarray] = {
        "src": windows.src, "window_start": windows.window_start,
        "window_end": windows.window_end, "packets": windows.packets}
    for i, name in enumerate(windows.definition.names):
        columns[name] = windows.X[:, i]
    return columns
