"""Fixed-point encoding of the ELM sums, with the overflow bound checked before encryption.

Additively homomorphic schemes add integers modulo a plaintext modulus ``t``. The hidden-layer
outputs ``H`` (bounded by 1 in absolute value for sigmoid and tanh) are quantised to integers
``q = round(H * 2**scale_bits)``; then ``HᵀH`` and ``HᵀT`` are integer sums that decrypt exactly
as long as every total stays below ``t / 2`` in absolute value. That is what :func:`check_capacity`
guarantees *before* anything is encrypted, so a wrap-around can never silently corrupt a model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from darkscope.errors import DarkscopeError

# float64 holds every integer below 2**53 exactly: BLAS products of pieces stay under it.
_FLOAT_EXACT_BITS = 53
_PIECE_BITS = 10
_ROW_BLOCK = 8192
_MAX_SCALE_BITS = 24


class CapacityError(DarkscopeError):
    """The encoded sums could exceed the plaintext modulus and would decrypt wrongly."""


@dataclass(frozen=True)
class FixedPoint:
    """``scale_bits`` fractional bits for hidden-layer outputs in [-1, 1]."""

    scale_bits: int

    def __post_init__(self) -> None:
        if not 1 <= self.scale_bits <= _MAX_SCALE_BITS:
            raise DarkscopeError(
                f"scale_bits must be between 1 and {_MAX_SCALE_BITS}, got {self.scale_bits}")

    @property
    def scale(self) -> int:
        return 1 << self.scale_bits

    def quantise(self, hidden: np.ndarray) -> np.ndarray:
        """Integers ``round(H * 2**scale_bits)``; |H| <= 1 so |q| <= 2**scale_bits."""
        return np.rint(hidden * self.scale).astype(np.int64)

    def largest_total(self, rows: int) -> int:
        """The largest |entry| of ``HᵀH`` over ``rows`` rows (``HᵀT`` is smaller)."""
        return rows * self.scale * self.scale

    def check_capacity(self, rows: int, plaintext_bound: int, what: str = "the sums") -> None:
        """Fail unless ``rows`` rows of encoded values sum without wrapping modulo ``t``."""
        need = self.largest_total(rows)
        if need > plaintext_bound:
            raise CapacityError(
                f"{what}: {rows} rows x value range 1 x scale 2^{self.scale_bits} squared "
                f"can reach {need} (2^{need.bit_length()}), beyond the plaintext bound "
                f"{plaintext_bound} (2^{plaintext_bound.bit_length()}); use fewer scale bits "
                f"(at most {largest_scale_bits(rows, plaintext_bound)}) or a larger modulus")


def largest_scale_bits(rows: int, plaintext_bound: int, cap: int = 20) -> int:
    """The most fractional bits for which ``rows`` rows still fit under ``plaintext_bound``."""
    bits = min(cap, _MAX_SCALE_BITS)
    while bits > 0 and rows << (2 * bits) > plaintext_bound:
        bits -= 1
    if bits == 0:
        raise CapacityError(f"{rows} rows do not fit the plaintext bound {plaintext_bound} "
                            "even with one fractional bit")
    return bits


def _pieces(q: np.ndarray, value_bits: int) -> list[np.ndarray]:
    """Split |q| <= 2**value_bits into base-2**10 digits, the top one signed and <= 2**10."""
    pieces = []
    rest = q
    mask = (1 << _PIECE_BITS) - 1
    for _ in range((value_bits - 1) // _PIECE_BITS):
        pieces.append((rest & mask).astype(np.float64))
        rest = rest >> _PIECE_BITS
    pieces.append(rest.astype(np.float64))
    return pieces


def exact_gram(q: np.ndarray, value_bits: int) -> np.ndarray:
    """``qᵀq`` as exact int64 for |q| <= 2**value_bits, computed with float64 BLAS.

    numpy's int64 matmul does not use BLAS and is ~50x slower; splitting each value into
    10-bit digits makes every digit product sum exact in float64, and the digit products
    recombine with shifts into the exact integer result.
    """
    n, width = q.shape
    block = min(_ROW_BLOCK, 1 << (_FLOAT_EXACT_BITS - 2 * (_PIECE_BITS + 1)))
    gram = np.zeros((width, width), dtype=np.int64)
    for start in range(0, n, block):
        pieces = _pieces(q[start:start + block], value_bits)
        for i, left in enumerate(pieces):
            for j in range(i, len(pieces)):
                product = (left.T @ pieces[j]).astype(np.int64)
                if j != i:
                    product += product.T
                gram += product << (_PIECE_BITS * (i + j))
    return gram


def exact_cross(q: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``qᵀT`` as exact int64 for 0/1 targets (column sums of q per class)."""
    n = q.shape[0]
    out = np.zeros((q.shape[1], targets.shape[1]), dtype=np.int64)
    for start in range(0, n, _ROW_BLOCK):
        block = q[start:start + _ROW_BLOCK].astype(np.float64)
        out += (block.T @ targets[start:start + _ROW_BLOCK]).astype(np.int64)
    return out


def pack_sums(gram: np.ndarray, cross: np.ndarray) -> np.ndarray:
    """One flat int64 vector: the upper triangle of the symmetric ``HᵀH``, then ``HᵀT``."""
    rows, cols = np.triu_indices(gram.shape[0])
    return np.concatenate([gram[rows, cols], cross.ravel()])


def unpack_sums(values: np.ndarray, n_hidden: int, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`pack_sums`."""
    n_tri = n_hidden * (n_hidden + 1) // 2
    if values.shape != (n_tri + n_hidden * n_classes,):
        raise DarkscopeError(f"expected {n_tri + n_hidden * n_classes} values for L={n_hidden}, "
                             f"{n_classes} classes; got {values.shape[0]}")
    gram = np.zeros((n_hidden, n_hidden), dtype=np.int64)
    rows, cols = np.triu_indices(n_hidden)
    gram[rows, cols] = values[:n_tri]
    gram[cols, rows] = values[:n_tri]
    return gram, values[n_tri:].reshape(n_hidden, n_classes).copy()


def packed_length(n_hidden: int, n_classes: int) -> int:
    return n_hidden * (n_hidden + 1) // 2 + n_hidden * n_classes
