"""Compiled group-by passes for the features: hash factorisation and time-ordered intervals.

Sorting 5 M 64-bit keys several times (once per distinct-count) costs more than the whole
budget; an open-addressing hash table gives dense group ids in one pass per key instead, and
one time-ordered pass yields every interval statistic. Each pass is a plain relational
aggregation (GROUP BY, or LAG over a partition ordered by time), see docs/backscatter.md.
"""

from __future__ import annotations

import numba
import numpy as np

_EMPTY = np.uint64(0xFFFFFFFFFFFFFFFF)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@numba.njit(cache=True, nogil=True)
def _insert(table: np.ndarray, bits: int, key: np.uint64, value: int) -> int:
    """Place ``key`` (absent) in an interleaved [key, id] table; returns nothing useful."""
    mask = np.uint64((1 << bits) - 1)
    slot = (key * _GOLDEN) >> np.uint64(64 - bits)
    while table[2 * slot] != _EMPTY:
        slot = (slot + np.uint64(1)) & mask
    table[2 * slot] = key
    table[2 * slot + 1] = np.uint64(value)
    return 0


@numba.njit(cache=True, nogil=True)
def factorize(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense ids of 64-bit keys (see :func:`factorize_pairs`)."""
    return factorize_pairs(keys, keys, 0, 0)


@numba.njit(cache=True, nogil=True)
def factorize_pairs(hi: np.ndarray, lo: np.ndarray, shift: int, expected: int = 0
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Dense ids of the keys ``hi << shift | lo`` (``GROUP BY hi, lo``) in order of first
    appearance, and the row of each id's first appearance. With ``shift == 0`` the key is
    ``lo`` alone. Built in the loop, so no key array is allocated. ``expected``: a guess of
    the distinct keys, to skip early doublings when most keys are distinct.

    Open addressing with keys and ids interleaved (one cache line per probe) and a table that
    starts small and doubles at half load, so few distinct keys stay cache-resident.
    Keys must not be 2**64 - 1 (the empty-slot marker; callers' keys never reach it)."""
    n = lo.shape[0]
    sh = np.uint64(shift)
    bits = 12
    while (1 << bits) < 2 * expected:
        bits += 1
    table = np.full(2 << bits, _EMPTY, np.uint64)
    ids = np.empty(n, np.int64)
    first = np.empty(n, np.int64)
    count = 0
    for i in range(n):
        key = np.uint64(lo[i])
        if shift:
            key |= np.uint64(hi[i]) << sh
        mask = np.uint64((1 << bits) - 1)
        slot = (key * _GOLDEN) >> np.uint64(64 - bits)
        while True:
            stored = table[2 * slot]
            if stored == key:
                ids[i] = np.int64(table[2 * slot + 1])
                break
            if stored == _EMPTY:
                table[2 * slot] = key
                table[2 * slot + 1] = np.uint64(count)
                ids[i] = count
                first[count] = i
                count += 1
                if 2 * count > (1 << bits):
                    bits += 1
                    grown = np.full(2 << bits, _EMPTY, np.uint64)
                    for j in range(count):
                        r = first[j]
                        old = np.uint64(lo[r])
                        if shift:
                            old |= np.uint64(hi[r]) << sh
                        _insert(grown, bits, old, j)
                    table = grown
                break
            slot = (slot + np.uint64(1)) & mask
    return ids, first[:count]


@numba.njit(cache=True, nogil=True)
def interval_sums(order: np.ndarray, ts: np.ndarray, gid: np.ndarray, n_groups: int,
                  pair: np.ndarray, n_pairs: int) -> tuple[np.ndarray, ...]:
    """Per group: count, sum and sum of squares of the gaps (seconds) between consecutive
    packets of the group, and of the gaps between consecutive packets of the same (group,
    destination port) pair. ``order`` visits rows in time order."""
    last_group = np.full(n_groups, -1, np.int64)
    last_pair = np.full(n_pairs, -1, np.int64)
    g_n = np.zeros(n_groups, np.int64)
    g_sum = np.zeros(n_groups, np.float64)
    g_sq = np.zeros(n_groups, np.float64)
    p_n = np.zeros(n_groups, np.int64)
    p_sum = np.zeros(n_groups, np.float64)
    p_sq = np.zeros(n_groups, np.float64)
    for k in range(order.shape[0]):
        i = order[k]
        g = gid[i]
        t = ts[i]
        if last_group[g] >= 0:
            d = (t - last_group[g]) * 1e-9
            g_n[g] += 1
            g_sum[g] += d
            g_sq[g] += d * d
        last_group[g] = t
        p = pair[i]
        if last_pair[p] >= 0:
            d = (t - last_pair[p]) * 1e-9
            p_n[g] += 1
            p_sum[g] += d
            p_sq[g] += d * d
        last_pair[p] = t
    return g_n, g_sum, g_sq, p_n, p_sum, p_sq


@numba.njit(cache=True, nogil=True)
def distinct_small(gid: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Distinct values 0..319 per group (protocols; 256 stands for "none") via bitsets."""
    bits = np.zeros((n_groups, 5), np.uint64)
    for i in range(gid.shape[0]):
        v = values[i]
        bits[gid[i], v >> 6] |= np.uint64(1) << np.uint64(v & 63)
    out = np.zeros(n_groups, np.float64)
    for g in range(n_groups):
        total = 0
        for w in range(5):
            x = bits[g, w]
            while x:
                x &= x - np.uint64(1)
                total += 1
        out[g] = total
    return out


@numba.njit(cache=True, nogil=True)
def host_ranks(order: np.ndarray, host: np.ndarray, n_hosts: int) -> np.ndarray:
    """Each row's position among its host's packets in time order (0 for the first)."""
    seen = np.zeros(n_hosts, np.int64)
    rank = np.empty(order.shape[0], np.int64)
    for k in range(order.shape[0]):
        i = order[k]
        rank[i] = seen[host[i]]
        seen[host[i]] += 1
    return rank


@numba.njit(cache=True, nogil=True)
def group_min_max(gid: np.ndarray, ts: np.ndarray, n_groups: int) -> tuple[np.ndarray, ...]:
    lo = np.full(n_groups, np.iinfo(np.int64).max, np.int64)
    hi = np.full(n_groups, np.iinfo(np.int64).min, np.int64)
    for i in range(gid.shape[0]):
        g = gid[i]
        if ts[i] < lo[g]:
            lo[g] = ts[i]
        if ts[i] > hi[g]:
            hi[g] = ts[i]
    return lo, hi


@numba.njit(cache=True, nogil=True)
def in_windows(p_src: np.ndarray, p_ts: np.ndarray, w_src: np.ndarray, w_start: np.ndarray,
               w_end: np.ndarray) -> np.ndarray:
    """Interval join: is packet (src, ts) inside a window [start, end) of the same src?
    Both sides sorted by (src, time); windows of one src do not overlap. One merge pass."""
    out = np.zeros(p_src.shape[0], np.bool_)
    j = 0
    m = w_src.shape[0]
    for i in range(p_src.shape[0]):
        s = p_src[i]
        t = p_ts[i]
        while j < m and (w_src[j] < s or (w_src[j] == s and w_end[j] <= t)):
            j += 1
        if j < m and w_src[j] == s and w_start[j] <= t:
            out[i] = True
    return out
