"""Brute-force association rules: every itemset enumerated and counted, straight from the
definitions in darkscope.patterns.mining (for small inputs only)."""

from __future__ import annotations

from fractions import Fraction
from itertools import combinations


def brute_force_rules(transactions: list[set[int]], min_hosts: int, min_confidence: float,
                      max_len: int) -> set[tuple[tuple[int, ...], int, int, int, int]]:
    """(antecedent, consequent, support, antecedent support, consequent support) of every rule."""
    items = sorted(set().union(*transactions)) if transactions else []

    def count(itemset: tuple[int, ...]) -> int:
        wanted = set(itemset)
        return sum(1 for t in transactions if wanted <= t)

    wanted = Fraction(min_confidence).limit_denominator(1 << 30)
    found = set()
    for size in range(2, max_len + 1):
        for itemset in combinations(items, size):
            support = count(itemset)
            if support < min_hosts:
                continue
            for head in itemset:
                body = tuple(i for i in itemset if i != head)
                body_support = count(body)
                if Fraction(support, body_support) >= wanted:
                    found.add((body, head, support, body_support, count((head,))))
    return found
