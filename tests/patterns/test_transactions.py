"""Items per host are bounded as documented: share, top values, sweepers as one item."""

from __future__ import annotations

import numpy as np
import pytest

from darkscope.errors import UsageError
from darkscope.patterns.catalogue import load_catalogue
from darkscope.patterns.scan import Period
from darkscope.patterns.transactions import ItemPolicy, build

CATALOGUE = load_catalogue()          # win, tos, dport -> attribute ids 0, 1, 2


def _period(entries: list[tuple[int, int, int, int]]) -> Period:
    """entries: (src, attr, value, SYN packets)."""
    keys = np.array([(s << 20) | (a << 16) | v for s, a, v, _ in entries], np.uint64)
    counts = np.array([c for *_, c in entries], np.uint64)
    order = np.argsort(keys)
    hosts = np.unique([e[0] for e in entries]).astype(np.uint32)
    return Period(0, keys[order], counts[order], hosts, np.ones(len(hosts), np.uint64),
                  np.zeros((len(hosts), 3), np.uint64))


def _items(tx) -> dict[int, set[str]]:
    out = {}
    for row, host in enumerate(tx.hosts):
        cols = tx.matrix.indices[tx.matrix.indptr[row]:tx.matrix.indptr[row + 1]]
        out[int(host)] = {tx.items[c] for c in cols}
    return out


def test_values_below_min_share_are_dropped():
    period = _period([(1, 2, 23, 90), (1, 2, 2323, 10), (1, 2, 80, 1), (1, 0, 5840, 101)])
    items = _items(build(period, CATALOGUE, ItemPolicy(min_share=0.05)))
    assert items[1] == {"dport=23", "dport=2323", "win=5840"}


def test_at_most_max_values_keeping_the_busiest_smaller_value_on_ties():
    period = _period([(7, 1, v, c) for v, c in [(0, 5), (24, 5), (184, 5), (4, 9)]])
    items = _items(build(period, CATALOGUE, ItemPolicy(min_share=0, max_values=3)))
    assert items[7] == {"tos=4", "tos=0", "tos=24"}


def test_sweepers_get_one_item_per_kind():
    sweep = [(3, 2, port, 1) for port in range(1000, 1100)]
    period = _period([*sweep, (3, 0, 1024, 100), (4, 2, 23, 5)])
    items = _items(build(period, CATALOGUE, ItemPolicy(sweep_values=64)))
    assert items[3] == {"dport=*sweep*", "win=1024"}
    assert items[4] == {"dport=23"}


def test_policy_is_validated():
    with pytest.raises(UsageError):
        ItemPolicy(min_share=2)
    with pytest.raises(UsageError):
        ItemPolicy(max_values=0)
    with pytest.raises(UsageError):
        ItemPolicy(max_values=10, sweep_values=5)


def test_unknown_item_names_are_reported():
    with pytest.raises(UsageError, match=r"unknown item name.*'bogus'.*win, tos, dport"):
        load_catalogue(items=["win", "bogus"])


def test_bad_catalogue_names_file_and_field(tmp_path):
    path = tmp_path / "items.toml"
    path.write_text('[[item]]\nname = "x"\ncolumn = "win"\ntransform = "square"\n')
    with pytest.raises(Exception, match=r"items.toml: item\[0\].transform: unknown 'square'"):
        load_catalogue(path)


def test_catalogue_columns_must_fit_their_transform(tmp_path):
    from darkscope.patterns.scan import PeriodScanner

    path = tmp_path / "items.toml"
    path.write_text('[[item]]\nname = "seq"\ncolumn = "seq"\ntransform = "value"\n'
                    'default = true\n')
    with pytest.raises(UsageError, match=r"'seq'.*at most 16 bits; seq is uint32"):
        PeriodScanner(load_catalogue(path), 86400 * 10**9)
    path.write_text('[[item]]\nname = "x"\ncolumn = "no_such"\ntransform = "value"\n'
                    'default = true\n')
    with pytest.raises(UsageError, match=r"unknown packet column.*no_such"):
        PeriodScanner(load_catalogue(path), 86400 * 10**9)
