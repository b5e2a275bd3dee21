"""Synthetic host transactions shaped like a day of a /16 telescope, generated vectorised.

Each host carries 1-3 TCP windows (Zipf over 60,000 values), 1-2 ToS values (of 8) and 1-6
destination ports (Zipf over 5,000); 8% of hosts carry a planted Mirai-like pattern
{win=1320, win=2376, win=792, dport=23} and 5% {tos=0, tos=24, tos=184}. Items are column ids;
``names`` gives each its ``kind=value`` string.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

WINDOWS, TOS, PORTS = 60_000, 8, 5_000


def _zipf(rng: np.random.Generator, n: int, size: int, a: float) -> np.ndarray:
    ranks = np.arange(1, n + 1, dtype=np.float64)
    p = ranks ** -a
    return rng.choice(n, size=size, p=p / p.sum())


def generate(hosts: int, seed: int = 0) -> tuple[sp.csr_matrix, list[str]]:
    """A hosts x items 0/1 CSR matrix and the item names."""
    rng = np.random.default_rng(seed)
    n_win = rng.integers(1, 4, hosts)
    n_tos = rng.integers(1, 3, hosts)
    n_port = rng.integers(1, 7, hosts)
    rows = [np.repeat(np.arange(hosts), n_win), np.repeat(np.arange(hosts), n_tos),
            np.repeat(np.arange(hosts), n_port)]
    cols = [_zipf(rng, WINDOWS, int(n_win.sum()), 1.1),
            WINDOWS + _zipf(rng, TOS, int(n_tos.sum()), 1.5),
            WINDOWS + TOS + _zipf(rng, PORTS, int(n_port.sum()), 1.2)]
    win = {v: i for i, v in enumerate([1320, 2376, 792])}
    mirai = np.flatnonzero(rng.random(hosts) < 0.08)
    for value in win:
        rows.append(mirai)
        cols.append(np.full(len(mirai), value))
    rows.append(mirai)
    cols.append(np.full(len(mirai), WINDOWS + TOS + 23))
    tos = np.flatnonzero(rng.random(hosts) < 0.05)
    for value in (0, 1, 6):                     # tos=0, tos=24, tos=184 (see names)
        rows.append(tos)
        cols.append(np.full(len(tos), WINDOWS + value))
    r, c = np.concatenate(rows), np.concatenate(cols)
    matrix = sp.csr_matrix((np.ones(len(r), bool), (r, c)), shape=(hosts, WINDOWS + TOS + PORTS))
    matrix.sum_duplicates()
    matrix.data[:] = True
    matrix.sort_indices()
    tos_values = [0, 24, 4, 8, 32, 40, 184, 204]
    names = ([f"win={v}" for v in range(WINDOWS)] + [f"tos={v}" for v in tos_values]
             + [f"dport={v}" for v in range(PORTS)])
    return matrix, names
