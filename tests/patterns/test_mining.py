"""Mined rules equal a brute-force enumeration exactly; variants group under their core rule."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from darkscope.errors import UsageError
from darkscope.patterns.mining import group_variants, min_hosts_for, mine_rules
from darkscope.patterns.transactions import Transactions

from .reference import brute_force_rules


def _transactions(rows: list[set[int]], n_items: int) -> Transactions:
    r = [i for i, row in enumerate(rows) for _ in row]
    c = [item for row in rows for item in sorted(row)]
    matrix = sp.csr_matrix((np.ones(len(r), bool), (r, c)), shape=(len(rows), n_items))
    return Transactions(np.arange(len(rows), dtype=np.uint32), matrix,
                        [f"i={k}" for k in range(n_items)], np.arange(n_items, dtype=np.uint32))


def _random_rows(seed: int, hosts: int, n_items: int) -> list[set[int]]:
    rng = np.random.default_rng(seed)
    # correlated items: a few planted patterns plus noise, so rules of every length exist
    patterns = [set(rng.choice(n_items, size=rng.integers(2, 5), replace=False).tolist())
                for _ in range(4)]
    rows = []
    for _ in range(hosts):
        row = set(patterns[rng.integers(len(patterns))]) if rng.random() < 0.7 else set()
        row |= set(rng.choice(n_items, size=rng.integers(0, 4), replace=False).tolist())
        row -= {int(x) for x in rng.choice(n_items, size=rng.integers(0, 2))}
        rows.append(row or {int(rng.integers(n_items))})
    return rows


def _as_set(rules) -> set:
    return {(rules.antecedents[i], int(rules.consequents[i]), int(rules.support[i]),
             int(rules.body_support[i]), int(rules.head_support[i])) for i in range(len(rules))}


@pytest.mark.parametrize("engine", ["apriori", "fpgrowth"])
@pytest.mark.parametrize(("seed", "min_hosts", "min_confidence", "max_len"),
                         [(1, 5, 0.9, 4), (2, 3, 0.6, 3), (3, 10, 0.8, 4), (4, 2, 0.5, 4),
                          (5, 8, 1.0, 4), (6, 2, 0.3, 2), (7, 1, 0.0, 4)])
def test_rules_equal_brute_force(engine, seed, min_hosts, min_confidence, max_len):
    rows = _random_rows(seed, 120, 12)
    mined = mine_rules(_transactions(rows, 12), min_hosts, min_confidence, max_len, engine)
    expected = brute_force_rules(rows, min_hosts, min_confidence, max_len)
    assert len(expected) >= 2
    assert _as_set(mined) == expected


def test_longer_itemsets_fall_back_to_fpgrowth():
    rows = _random_rows(8, 120, 10)
    mined = mine_rules(_transactions(rows, 10), 2, 0.5, 6)
    assert _as_set(mined) == brute_force_rules(rows, 2, 0.5, 6)
    with pytest.raises(UsageError, match="fpgrowth"):
        mine_rules(_transactions(rows, 10), 2, 0.5, 6, "apriori")


def test_sparse_item_ids_and_empty_hosts():
    # item ids far apart and hosts without any frequent item
    rows = [{3, 60000}] * 4 + [{70000}] + [{3}] * 2
    tx = _transactions([set(), *rows], 70001)
    for engine in ("apriori", "fpgrowth"):
        assert _as_set(mine_rules(tx, 2, 0.5, 4, engine)) == brute_force_rules(
            [set(), *rows], 2, 0.5, 4)


def test_confidence_boundary_is_inclusive_and_exact():
    # {0} -> {1}: 9 of 10 hosts carry 1, confidence exactly 0.9
    rows = [{0, 1}] * 9 + [{0}]
    mined = _as_set(mine_rules(_transactions(rows, 2), 1, 0.9, 2))
    assert ((0,), 1, 9, 10, 9) in mined
    stricter = _as_set(mine_rules(_transactions(rows, 2), 1, 0.9000001, 2))
    assert ((0,), 1, 9, 10, 9) not in stricter


def test_lift_and_confidence_values():
    rows = [{0, 1}] * 6 + [{1}] * 2 + [{2}] * 2
    rules = mine_rules(_transactions(rows, 3), 1, 0.5, 2)
    i = next(k for k in range(len(rules)) if rules.antecedents[k] == (0,))
    assert rules.confidence[i] == 1.0
    assert rules.lift[i] == pytest.approx(1.0 * 10 / 8)


def test_support_above_hosts_gives_no_rules():
    rows = [{0, 1}] * 5
    assert len(mine_rules(_transactions(rows, 2), 6, 0.5, 2)) == 0


def test_variants_group_under_the_smallest_rule():
    # every host with 2323 carries 23; X varies: {2323, X} -> 23 are variants
    rows = ([{0, 1, 2}] * 10 + [{0, 1, 3}] * 10 + [{0, 1, 4}] * 10 + [{1}] * 5 + [{2, 3}] * 3)
    rules = mine_rules(_transactions(rows, 5), 5, 0.9, 3)
    core = group_variants(rules)
    names = {(rules.antecedents[i], int(rules.consequents[i])): i for i in range(len(rules))}
    base = names[((0,), 1)]
    for extra in (2, 3, 4):
        assert core[names[((0, extra), 1)]] == base
    assert core[base] == base
    # every core rule has no smaller rule with the same consequent
    for i in np.flatnonzero(core == np.arange(len(rules))):
        a, head = rules.antecedents[i], int(rules.consequents[i])
        assert not any(((x,), head) in names for x in a if len(a) > 1)


def test_threshold_options():
    assert min_hosts_for(2000, None, 0.01) == 20
    assert min_hosts_for(2001, None, 0.01) == 21
    assert min_hosts_for(10, 3, None) == 3
    with pytest.raises(UsageError):
        min_hosts_for(10, 3, 0.1)
    with pytest.raises(UsageError):
        min_hosts_for(10, None, 1.5)
    with pytest.raises(UsageError):
        mine_rules(_transactions([{0, 1}], 2), 1, 1.5, 2)
