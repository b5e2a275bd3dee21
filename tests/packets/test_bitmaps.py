"""The compiled validity-bitmap builder against numpy's packbits, row counts around the
8-row groups, and rows that arrive in runs splitting those groups."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from darkscope.packets import _kernels as k


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 100, k.PARALLEL_MIN_ROWS - 1, 70_001])
def test_bitmap_rows_match_packbits(n: int) -> None:
    """Rows arrive in runs of any length (walker calls, parallel chunks, decode blocks): the
    bytes that two runs share must come out as if one run had set them."""
    rng = np.random.default_rng(n)
    val = rng.integers(0, 1 << k.N_VAL, n + 5, dtype=np.uint32)  # rows past n are ignored
    val[: n // 3] = (1 << k.N_VAL) - 1  # runs of all-valid rows too,
    val[n // 3: n // 2] = 0x5A5A5 & ((1 << k.N_VAL) - 1)  # and of equal mixed flags
    cuts = np.unique(np.concatenate([[0, n], rng.integers(0, n + 1, 6)]))
    bits = np.zeros((k.N_VAL, (n + 7) // 8), np.uint8)
    for lo, hi in itertools.pairwise(cuts):
        k.bitmap_rows(val, lo, hi, bits)
    for flag in range(k.N_VAL):
        want = ((val[:n] >> flag) & 1).astype(np.uint8)
        np.testing.assert_array_equal(bits[flag], np.packbits(want, bitorder="little"))
