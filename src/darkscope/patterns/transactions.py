"""Per-host transactions: the bounded set of items each host carried in a period.

Raw per-host item sets explode: a host sweeping every port would carry 65,536 ``dport`` items and
make every itemset of its other items frequent in countless variants. So, per host and item kind,
only the values that carry a real share of the host's SYN packets become items:

- a value is kept if it carries at least ``min_share`` of the host's SYN packets of that kind,
  and only the ``max_values`` values carrying most packets are kept (ties: smaller value first);
- a host with more than ``sweep_values`` distinct values of one kind is a sweeper for that kind:
  it gets the single item ``name=*sweep*`` instead of any value.

A host therefore has at most ``max_values`` items per kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from darkscope.errors import UsageError
from darkscope.patterns.catalogue import SWEEP, Catalogue

if TYPE_CHECKING:       # keep the miner importable without the packet reader
    from darkscope.patterns.scan import Period


@dataclass(frozen=True)
class ItemPolicy:
    """How many items a host may carry per kind (see the module docstring)."""

    min_share: float = 0.05
    max_values: int = 8
    sweep_values: int = 64

    def __post_init__(self) -> None:
        if not 0 <= self.min_share <= 1:
            raise UsageError(f"min share must be within 0..1, got {self.min_share}")
        if self.max_values < 1:
            raise UsageError(f"max values per item kind must be >= 1, got {self.max_values}")
        if self.sweep_values < self.max_values:
            raise UsageError("the sweep threshold must be at least the max values per kind")


@dataclass
class Transactions:
    """Hosts x items as a sparse 0/1 matrix (CSR, rows sorted by host, columns by item code)."""

    hosts: np.ndarray           # uint32 source addresses, one per row
    matrix: sp.csr_matrix       # bool, hosts x items
    items: list[str]            # item string per column
    codes: np.ndarray           # uint32 attr << 17 | value code per column
    _by_item: sp.csc_matrix | None = field(default=None, repr=False)

    @property
    def n_hosts(self) -> int:
        return len(self.hosts)

    def carriers(self, item_ids: list[int] | np.ndarray) -> np.ndarray:
        """Boolean mask of the hosts that carry every item in ``item_ids``."""
        if self._by_item is None:           # column access: once per period, not per rule
            self._by_item = self.matrix.tocsc()
        mask = np.ones(self.n_hosts, bool)
        for item in item_ids:
            column = np.zeros(self.n_hosts, bool)
            start, end = self._by_item.indptr[item], self._by_item.indptr[item + 1]
            column[self._by_item.indices[start:end]] = True
            mask &= column
        return mask


def build(period: Period, catalogue: Catalogue, policy: ItemPolicy) -> Transactions:
    """The bounded transactions of every host with a TCP SYN packet in ``period``."""
    keys, counts = period.item_keys, period.item_counts.astype(np.int64)
    if not len(keys):
        return Transactions(np.zeros(0, np.uint32), sp.csr_matrix((0, 0), dtype=bool), [],
                            np.zeros(0, np.uint32))
    group_key = keys >> np.uint64(16)                       # src << 4 | attr
    starts = np.flatnonzero(np.r_[True, group_key[1:] != group_key[:-1]])
    sizes = np.diff(np.r_[starts, len(keys)])
    group = np.repeat(np.arange(len(starts)), sizes)
    totals = np.add.reduceat(counts, starts)
    # rank within (host, kind): most packets first, smaller value first on ties (keys sorted)
    order = np.lexsort((keys, -counts, group))
    rank = np.empty(len(keys), np.int64)
    rank[order] = np.arange(len(keys)) - np.repeat(starts, sizes)
    sweeper = sizes > policy.sweep_values
    keep = ((counts >= policy.min_share * totals[group]) & (rank < policy.max_values)
            & ~sweeper[group])
    src = (keys >> np.uint64(20)).astype(np.uint32)
    attr = ((keys >> np.uint64(16)) & np.uint64(0xF)).astype(np.uint32)
    value = (keys & np.uint64(0xFFFF)).astype(np.uint32)
    item_src = np.r_[src[keep], src[starts[sweeper]]]
    item_code = np.r_[(attr[keep] << 17) | value[keep],
                      (attr[starts[sweeper]] << 17) | np.uint32(SWEEP)]
    hosts, row = np.unique(item_src, return_inverse=True)
    codes, col = np.unique(item_code, return_inverse=True)
    matrix = sp.csr_matrix((np.ones(len(row), bool), (row, col)),
                           shape=(len(hosts), len(codes)))
    matrix.sort_indices()
    labels = [catalogue.label(int(c >> 17), int(c & 0x1FFFF)) for c in codes]
    return Transactions(hosts, matrix, labels, codes.astype(np.uint32))
