"""A compiled level-wise (Apriori) itemset counter for short itemsets over CSR transactions.

Why not only FP-growth: with itemsets capped at 4 items and a few hundred frequent items, counting
candidates straight from the CSR arrays avoids building millions of Python lists for a miner, which
is where most of the time and memory of the pyfim route goes (docs/patterns.md). Itemsets are
packed into one uint64 key, 16 bits per item, first item in the highest bits, so sorted keys are
itemsets in lexicographic order and lookups are binary searches.
"""

from __future__ import annotations

import numpy as np
from numba import njit

MAX_ITEMS = 1 << 16       # dense item ids must fit in 16 bits
MAX_LEN = 4               # 4 x 16 bits per key


@njit(cache=True)
def _find(keys: np.ndarray, key: np.uint64) -> int:
    """Index of ``key`` in the sorted ``keys``, or -1 (plain binary search, no allocation)."""
    lo, hi = 0, len(keys)
    while lo < hi:
        mid = (lo + hi) >> 1
        if keys[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    if lo < len(keys) and keys[lo] == key:
        return lo
    return -1


_EMPTY = np.uint64(0xFFFFFFFFFFFFFFFF)    # no itemset packs to this (items ascend)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@njit(cache=True)
def build_table(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """An open-addressing hash table of ``keys`` -> their index: O(1) lookups where a binary
    search would stall on a branch miss per step."""
    bits = 4
    while (1 << bits) < 2 * len(keys) + 2:
        bits += 1
    slots = np.full(1 << bits, _EMPTY, np.uint64)
    values = np.zeros(1 << bits, np.int64)
    mask = (1 << bits) - 1
    for i in range(len(keys)):
        h = np.int64((keys[i] * _GOLDEN) >> np.uint64(64 - bits))
        while slots[h] != _EMPTY:
            h = (h + 1) & mask
        slots[h] = keys[i]
        values[h] = i
    return slots, values, bits


@njit(cache=True)
def _lookup(slots: np.ndarray, values: np.ndarray, bits: int, key: np.uint64) -> int:
    mask = (1 << bits) - 1
    h = np.int64((key * _GOLDEN) >> np.uint64(64 - bits))
    while slots[h] != _EMPTY:
        if slots[h] == key:
            return values[h]
        h = (h + 1) & mask
    return -1


@njit(cache=True)
def count_pairs(indptr: np.ndarray, indices: np.ndarray, n_items: int) -> np.ndarray:
    """Dense upper-triangular pair counts (rows' items sorted ascending)."""
    counts = np.zeros((n_items, n_items), np.int32)
    for r in range(len(indptr) - 1):
        for a in range(indptr[r], indptr[r + 1]):
            i = indices[a]
            for b in range(a + 1, indptr[r + 1]):
                counts[i, indices[b]] += 1
    return counts


@njit(cache=True)
def candidates(prev: np.ndarray, k: int) -> np.ndarray:
    """k-itemsets whose every (k-1)-subset is in ``prev`` (sorted keys of (k-1)-itemsets)."""
    out = []
    n = len(prev)
    start = 0
    items = np.zeros(k, np.int64)
    while start < n:
        prefix = prev[start] >> np.uint64(16)
        end = start
        while end < n and (prev[end] >> np.uint64(16)) == prefix:
            end += 1
        for x in range(start, end):
            for y in range(x + 1, end):
                key = (prev[x] << np.uint64(16)) | (prev[y] & np.uint64(0xFFFF))
                for i in range(k):
                    items[i] = (key >> np.uint64(16 * (k - 1 - i))) & np.uint64(0xFFFF)
                ok = True
                # the subsets without the last or second-to-last item are prev[x], prev[y]
                for drop in range(k - 2):
                    sub = np.uint64(0)
                    for i in range(k):
                        if i != drop:
                            sub = (sub << np.uint64(16)) | np.uint64(items[i])
                    if _find(prev, sub) < 0:
                        ok = False
                        break
                if ok:
                    out.append(key)
        start = end
    result = np.empty(len(out), np.uint64)
    for i in range(len(out)):
        result[i] = out[i]
    return result


@njit(cache=True)
def count_candidates(indptr: np.ndarray, indices: np.ndarray, active: np.ndarray,
                     prev: np.ndarray, cands: np.ndarray, k: int) -> np.ndarray:
    """Hosts carrying each candidate k-itemset: per row, every frequent (k-1)-subset of the row's
    active items is extended by each later active item and looked up."""
    prev_slots, prev_values, prev_bits = build_table(prev)
    slots, values, bits = build_table(cands)
    counts = np.zeros(len(cands), np.int64)
    row = np.empty(len(active), np.int64)
    idx = np.zeros(k, np.int64)
    for r in range(len(indptr) - 1):
        m = 0
        for a in range(indptr[r], indptr[r + 1]):
            if active[indices[a]]:
                row[m] = indices[a]
                m += 1
        if m < k:
            continue
        # enumerate (k-1)-combinations idx[0] < ... < idx[k-2] of range(m)
        for i in range(k - 1):
            idx[i] = i
        while True:
            key = np.uint64(0)
            for i in range(k - 1):
                key = (key << np.uint64(16)) | np.uint64(row[idx[i]])
            if _lookup(prev_slots, prev_values, prev_bits, key) >= 0:
                for e in range(idx[k - 2] + 1, m):
                    pos = _lookup(slots, values, bits,
                                  (key << np.uint64(16)) | np.uint64(row[e]))
                    if pos >= 0:
                        counts[pos] += 1
            # next combination
            i = k - 2
            while i >= 0 and idx[i] == m - (k - 1) + i:
                i -= 1
            if i < 0:
                break
            idx[i] += 1
            for j in range(i + 1, k - 1):
                idx[j] = idx[j - 1] + 1
    return counts


def frequent_itemsets(indptr: np.ndarray, indices: np.ndarray, n_items: int, min_count: int,
                      max_len: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per size 1..max_len: (sorted keys, host counts) of the itemsets with count >= min_count.

    ``indices`` are dense item ids < ``n_items`` (< 65,536), sorted within each row.
    """
    if n_items >= MAX_ITEMS or max_len > MAX_LEN:
        raise ValueError("the compiled counter handles < 65,536 items and itemsets of <= 4")
    single = np.bincount(indices, minlength=n_items).astype(np.int64)
    keep = np.flatnonzero(single >= min_count)
    levels = [(keep.astype(np.uint64), single[keep])]
    if max_len < 2 or len(keep) < 2:
        return levels
    pairs = count_pairs(indptr, indices, n_items)
    a, b = np.nonzero(np.triu(pairs >= min_count, 1))
    keys = (a.astype(np.uint64) << np.uint64(16)) | b.astype(np.uint64)
    order = np.argsort(keys)
    levels.append((keys[order], pairs[a, b].astype(np.int64)[order]))
    for k in range(3, max_len + 1):
        prev = levels[-1][0]
        if len(prev) < 2:
            break
        cands = candidates(prev, k)
        if not len(cands):
            break
        active = np.zeros(n_items, np.bool_)
        for i in range(k - 1):
            active[((prev >> np.uint64(16 * i)) & np.uint64(0xFFFF)).astype(np.int64)] = True
        counts = count_candidates(indptr, indices, active, prev, cands, k)
        frequent = counts >= min_count
        if not frequent.any():
            break
        levels.append((cands[frequent], counts[frequent]))
    return levels


def unpack(keys: np.ndarray, k: int) -> np.ndarray:
    """keys of k-itemsets -> (n, k) item ids."""
    shifts = np.arange(k - 1, -1, -1, dtype=np.uint64) * np.uint64(16)
    return ((keys[:, None] >> shifts[None, :]) & np.uint64(0xFFFF)).astype(np.int64)


def pack(items: np.ndarray) -> np.ndarray:
    """(n, k) item ids (ascending per row) -> keys."""
    keys = np.zeros(len(items), np.uint64)
    for column in range(items.shape[1]):
        keys = (keys << np.uint64(16)) | items[:, column].astype(np.uint64)
    return keys
