"""Association rules X -> y over host transactions, with support counted in hosts.

Definitions (the classic ones, which every tool in benchmarks/rules.py is configured to match):
support(X -> y) = hosts carrying X and y; confidence = support / hosts carrying X; lift =
confidence / (hosts carrying y / all hosts). A rule is kept when support >= ``min_hosts`` and
confidence >= ``min_confidence`` (compared exactly on the integer counts), its itemset X ∪ {y} has
at most ``max_len`` items, X is not empty, and y is a single item.

The frequent itemsets are found with Christian Borgelt's FP-growth (``pyfim``), the fastest
correct implementation measured here (docs/patterns.md); tests check every rule against a
brute-force enumeration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from darkscope.errors import UsageError
from darkscope.patterns.transactions import Transactions


@dataclass
class RuleSet:
    """Rules of one period, as parallel arrays; items are column ids of the transactions."""

    antecedents: list[tuple[int, ...]]
    consequents: np.ndarray      # int64
    support: np.ndarray          # int64 hosts carrying X and y
    body_support: np.ndarray     # int64 hosts carrying X
    head_support: np.ndarray     # int64 hosts carrying y
    n_hosts: int

    def __len__(self) -> int:
        return len(self.consequents)

    @property
    def confidence(self) -> np.ndarray:
        return self.support / np.maximum(self.body_support, 1)

    @property
    def lift(self) -> np.ndarray:
        return self.confidence * self.n_hosts / np.maximum(self.head_support, 1)

    def take(self, index: np.ndarray) -> RuleSet:
        return RuleSet([self.antecedents[i] for i in index], self.consequents[index],
                       self.support[index], self.body_support[index], self.head_support[index],
                       self.n_hosts)


def min_hosts_for(n_hosts: int, min_hosts: int | None, min_support: float | None) -> int:
    """The absolute host threshold from a count or a fraction of the period's hosts."""
    if (min_hosts is None) == (min_support is None):
        raise UsageError("give the minimum support either as hosts or as a fraction, not both")
    if min_support is not None:
        if not 0 < min_support <= 1:
            raise UsageError(f"minimum support fraction must be within (0, 1], got {min_support}")
        return max(1, math.ceil(min_support * n_hosts))
    assert min_hosts is not None
    if min_hosts < 1:
        raise UsageError(f"minimum support must be at least 1 host, got {min_hosts}")
    return min_hosts


ENGINES = ("auto", "apriori", "fpgrowth")


def mine_rules(tx: Transactions, min_hosts: int, min_confidence: float = 0.9,
               max_len: int = 4, engine: str = "auto") -> RuleSet:
    """All rules of ``tx`` meeting the thresholds (see the module docstring).

    ``engine``: ``apriori`` (compiled, itemsets of at most 4 items over < 65,536 frequent
    items), ``fpgrowth`` (pyfim, any size) or ``auto`` (apriori when it applies).
    """
    if not 0 <= min_confidence <= 1:
        raise UsageError(f"minimum confidence must be within 0..1, got {min_confidence}")
    if max_len < 2:
        raise UsageError(f"maximum itemset length must be at least 2, got {max_len}")
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if tx.n_hosts < min_hosts or tx.n_hosts == 0:
        return _empty(tx.n_hosts)
    from darkscope.patterns import _apriori

    support = np.bincount(tx.matrix.indices, minlength=tx.matrix.shape[1])
    n_frequent = int((support >= min_hosts).sum())
    compiled = max_len <= _apriori.MAX_LEN and n_frequent < _apriori.MAX_ITEMS
    if engine == "apriori" and not compiled:
        raise UsageError("the apriori engine handles at most 4 items per rule and 65,535 "
                         "frequent items; use the fpgrowth engine")
    wanted = Fraction(min_confidence).limit_denominator(1 << 30)
    if engine != "fpgrowth" and compiled:
        rules = _mine_apriori(tx, support, min_hosts, max_len, wanted)
    else:
        rules = _mine_fpgrowth(tx, min_hosts, min_confidence, max_len)
    keep = (rules.support * wanted.denominator >= rules.body_support * wanted.numerator)
    keep &= rules.support >= min_hosts
    return rank(rules.take(np.flatnonzero(keep)))


def rank(rules: RuleSet) -> RuleSet:
    """Rules in the order people read them: most lift first (what a rule says beyond its
    consequent's base rate), then most hosts, shorter antecedents, consequent item order."""
    order = np.lexsort((rules.consequents, [len(a) for a in rules.antecedents],
                        -rules.support, -np.round(rules.lift, 9)))
    return rules.take(order)


def _empty(n_hosts: int) -> RuleSet:
    return RuleSet([], *(np.zeros(0, np.int64) for _ in range(4)), n_hosts)


def _mine_apriori(tx: Transactions, support: np.ndarray, min_hosts: int,
                  max_len: int, wanted: Fraction) -> RuleSet:
    """Every rule X -> y of a frequent itemset, from compiled level-wise counts."""
    from darkscope.patterns import _apriori

    frequent = np.flatnonzero(support >= min_hosts)
    dense = np.full(len(support), -1, np.int64)
    dense[frequent] = np.arange(len(frequent))
    matrix = tx.matrix
    keep = dense[matrix.indices] >= 0
    row_of = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))[keep]
    indices = dense[matrix.indices[keep]].astype(np.int64)
    indptr = np.r_[0, np.cumsum(np.bincount(row_of, minlength=matrix.shape[0]))].astype(np.int64)
    levels = _apriori.frequent_itemsets(indptr, indices, len(frequent), min_hosts, max_len)
    single = levels[0][1]
    antecedents: list[tuple[int, ...]] = []
    parts: list[list[np.ndarray]] = [[], [], [], []]
    for k in range(2, len(levels) + 1):
        keys, counts = levels[k - 1]
        prev_keys, prev_counts = levels[k - 2]
        items = _apriori.unpack(keys, k)
        for j in range(k):
            body = np.delete(items, j, axis=1)
            body_support = prev_counts[np.searchsorted(prev_keys, _apriori.pack(body))]
            ok = counts * wanted.denominator >= body_support * wanted.numerator
            antecedents.extend(map(tuple, frequent[body[ok]].tolist()))
            parts[0].append(frequent[items[ok, j]])
            parts[1].append(counts[ok])
            parts[2].append(body_support[ok])
            parts[3].append(single[items[ok, j]])
    if not antecedents:
        return _empty(tx.n_hosts)
    head, both, body_support, head_support = (np.concatenate(p).astype(np.int64) for p in parts)
    return RuleSet(antecedents, head, both, body_support, head_support, tx.n_hosts)


def _mine_fpgrowth(tx: Transactions, min_hosts: int, min_confidence: float,
                   max_len: int) -> RuleSet:
    import fim

    database = distinct_transactions(tx, min_hosts)
    if not database:
        return _empty(tx.n_hosts)
    # Ask for slightly less confidence than wanted; the exact test is done on the counts after.
    found = fim.fpgrowth(database, target="r", supp=-min_hosts,
                         conf=max(0.0, min_confidence * 100 - 1e-6), zmin=2, zmax=max_len,
                         report="abh", mode="o")
    if not found:
        return _empty(tx.n_hosts)
    heads, bodies, support, body, head = zip(*found, strict=True)
    return RuleSet([tuple(sorted(b)) for b in bodies], np.array(heads, np.int64),
                   np.array(support, np.int64), np.array(body, np.int64),
                   np.array(head, np.int64), tx.n_hosts)


def distinct_transactions(tx: Transactions, min_hosts: int) -> dict[tuple[int, ...], int]:
    """The transactions reduced to what can matter, as {distinct transaction: hosts}.

    Items carried by fewer than ``min_hosts`` hosts cannot be in any rule, so they are removed
    first; many hosts then carry the same few items (every Mirai bot of a variant looks alike),
    and each distinct transaction is handed to the miner once with its multiplicity. Both steps
    are vectorised and leave every itemset's support unchanged.
    """
    matrix = tx.matrix
    support = np.bincount(matrix.indices, minlength=matrix.shape[1])
    is_frequent = support >= min_hosts
    if not is_frequent.any():
        return {}
    keep = is_frequent[matrix.indices]
    row_of = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))[keep]
    items = matrix.indices[keep].astype(np.int32)          # sorted within each row
    lengths = np.bincount(row_of, minlength=matrix.shape[0])
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    width = int(lengths.max())
    padded = np.full((matrix.shape[0], width), -1, np.int32)
    padded[row_of, np.arange(len(items)) - starts[row_of]] = items
    padded = padded[lengths > 0]
    # sort the rows and cut where a row differs from the previous one
    ordered = padded[np.lexsort(padded.T[::-1])]
    new = np.r_[True, (ordered[1:] != ordered[:-1]).any(axis=1)]
    first = np.flatnonzero(new)
    counts = np.diff(np.r_[first, len(ordered)])
    distinct = ordered[first]
    widths = (distinct >= 0).sum(axis=1)
    return {tuple(row[:n]): c for row, n, c in zip(distinct.tolist(), widths.tolist(),
                                                    counts.tolist(), strict=True)}


def group_variants(rules: RuleSet) -> np.ndarray:
    """For every rule, the index of the core rule it is a variant of (itself if core).

    X -> y is a variant of X' -> y when X' is a proper subset of X and X' -> y is a rule too:
    ``{dport=2323, win=5840} -> {dport=23}`` adds nothing to ``{dport=2323} -> {dport=23}``. A
    core rule has no such smaller rule; a variant is assigned to the core with the fewest
    antecedent items, then the most hosts, then the first in item order.
    """
    from itertools import combinations

    index = {(rules.antecedents[i], int(rules.consequents[i])): i for i in range(len(rules))}
    core = np.arange(len(rules))
    for i, antecedent in enumerate(rules.antecedents):
        head = int(rules.consequents[i])
        best = None
        for size in range(1, len(antecedent)):
            for subset in combinations(antecedent, size):
                j = index.get((subset, head))
                if j is not None and (best is None or rules.support[j] > rules.support[best]):
                    best = j
            if best is not None:
                break
        if best is not None:
            core[i] = best
    # a chosen subset rule may itself be a variant only if a smaller one existed; sizes are
    # tried from 1 up, so the first hit is always core
    return core


def published_forms(items: list[str], rules: RuleSet, core: np.ndarray) -> list[str | None]:
    """Per core rule, the rule of its group written as the literature writes them: the longest
    rule of the group whose items are all of one kind, as values (``{1320, 2376} -> {792}``
    for window sizes). Ties: most hosts. None where the group mixes kinds only."""
    kinds = [item.partition("=")[0] for item in items]
    best: dict[int, tuple[int, int, int]] = {}
    for r, antecedent in enumerate(rules.antecedents):
        head = int(rules.consequents[r])
        if any(kinds[i] != kinds[head] for i in antecedent):
            continue
        score = (len(antecedent), int(rules.support[r]), -r)
        c = int(core[r])
        if c not in best or score > best[c]:
            best[c] = score
    forms: list[str | None] = [None] * len(rules)
    for c, (_, _, minus_r) in best.items():
        r = -minus_r
        head = int(rules.consequents[r])
        values = sorted((items[i].partition("=")[2] for i in rules.antecedents[r]),
                        key=_value_order)
        forms[c] = (f"{kinds[head]}: " + rule_text(values, [items[head].partition("=")[2]]))
    return forms


def form_items(form: str) -> set[str]:
    """The items of a published form (``win: {1320, 2376} -> {792}`` -> win=1320, ...)."""
    kind, _, rule = form.partition(": ")
    values = rule.replace("->", " ").translate(str.maketrans("{},", "   ")).split()
    return {f"{kind}={value}" for value in values}


def _value_order(value: str) -> tuple[int, int | str]:
    return (0, int(value)) if value.isdigit() else (1, value)


def rule_text(antecedent: list[str], consequent: list[str]) -> str:
    """``{a, b} -> {c}`` as people write rules."""
    return "{" + ", ".join(antecedent) + "} -> {" + ", ".join(consequent) + "}"
