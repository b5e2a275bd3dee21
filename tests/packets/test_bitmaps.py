"""The compiled validity-bitmap builder against numpy's packbits, row counts around the
8-row groups and the parallel threshold."""

from __future__ import annotations

import numpy as np
import pytest

from darkscope.packets import _kernels as k


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 100, k.PARALLEL_MIN_ROWS - 1, 70_001])
def test_validity_bitmaps_match_packbits(n: int) -> None:
    rng = np.random.default_rng(n)
    val = rng.integers(0, 1 << k.N_VAL, n + 5, dtype=np.uint32)  # rows past n are ignored
    val[: n // 3] = (1 << k.N_VAL) - 1  # runs of all-valid rows too,
    val[n // 3: n // 2] = 0x5A5A5 & ((1 << k.N_VAL) - 1)  # and of equal mixed flags
    bits = np.zeros((k.N_VAL, (n + 7) // 8), np.uint8)
    counts = np.zeros(k.N_VAL, np.int64)
    k.validity_bitmaps(val, n, bits, counts)
    for flag in range(k.N_VAL):
        want = ((val[:n] >> flag) & 1).astype(np.uint8)
        np.testing.assert_array_equal(bits[flag], np.packbits(want, bitorder="little"))
        assert counts[flag] == want.sum()
