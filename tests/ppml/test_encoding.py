import numpy as np
import pytest
from phe.util import is_prime

from darkscope.ppml.backends import BFV_PLAIN_MODULUS
from darkscope.ppml.encoding import (
    CapacityError,
    FixedPoint,
    exact_cross,
    exact_gram,
    largest_scale_bits,
    pack_sums,
    unpack_sums,
)


@pytest.mark.parametrize("bits", [6, 10, 11, 16, 20, 24])
def test_exact_gram_equals_integer_matmul(bits):
    rng = np.random.default_rng(bits)
    q = rng.integers(-(2**bits), 2**bits + 1, size=(9000, 37))
    q[0] = 2**bits  # the extreme values must be exact too
    q[1] = -(2**bits)
    assert np.array_equal(exact_gram(q, bits), q.T @ q)


def test_exact_cross_equals_integer_matmul():
    rng = np.random.default_rng(1)
    q = rng.integers(0, 2**20 + 1, size=(20000, 11))
    targets = np.eye(4)[rng.integers(0, 4, size=20000)]
    assert np.array_equal(exact_cross(q, targets), q.T @ targets.astype(np.int64))


def test_quantise_rounds_to_scale():
    enc = FixedPoint(4)
    assert enc.quantise(np.array([0.0, 0.5, 1.0, -1.0, 0.03])).tolist() == [0, 8, 16, -16, 0]


def test_capacity_check_fails_before_overflow():
    bound = (BFV_PLAIN_MODULUS[4096] - 1) // 2
    FixedPoint(16).check_capacity(40_000, bound)
    with pytest.raises(CapacityError, match=r"40000 rows .* scale 2\^20 .*\(at most 16\)"):
        FixedPoint(20).check_capacity(40_000, bound)
    assert largest_scale_bits(40_000, bound) == 16
    with pytest.raises(CapacityError):
        largest_scale_bits(10**20, bound)


def test_pack_unpack_roundtrip():
    rng = np.random.default_rng(2)
    a = rng.integers(-100, 100, size=(7, 7))
    gram = a + a.T
    cross = rng.integers(-5, 5, size=(7, 3))
    packed = pack_sums(gram, cross)
    assert packed.shape == (7 * 8 // 2 + 21,)
    back_gram, back_cross = unpack_sums(packed, 7, 3)
    assert np.array_equal(back_gram, gram)
    assert np.array_equal(back_cross, cross)


@pytest.mark.parametrize("degree", sorted(BFV_PLAIN_MODULUS))
def test_plain_modulus_is_a_batching_prime(degree):
    t = BFV_PLAIN_MODULUS[degree]
    assert is_prime(t)
    assert t % (2 * degree) == 1


def test_capacity_is_capped_at_int64_headroom_for_large_plaintext_moduli():
    """A 3072-bit Paillier bound would admit totals that overflow the int64 sums."""
    huge = 1 << 3000
    FixedPoint(19).check_capacity(2**23, huge)
    with pytest.raises(CapacityError, match=r"beyond the int64 headroom .*\(at most 19\)"):
        FixedPoint(20).check_capacity(2**23, huge)
    assert largest_scale_bits(2**23, huge) == 19
