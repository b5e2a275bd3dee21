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
from scipy.linalg.blas import dsyrk

from darkscope.errors import DarkscopeError

# float64 holds every integer up to 2**53 exactly: BLAS sums of digit products stay below it.
_PIECE_BITS = 20
_ROW_BLOCK = 1 << 12  # rows per block: 2**12 * (2**20)**2 = 2**52 < 2**53
_MAX_SCALE_BITS = 24
# Decrypted and plaintext sums are int64; 2^62 leaves room to add two totals without overflow.
INT64_HEADROOM = 1 << 62


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

    def check_capacity(self, rows: int, plaintext_bound: int | None = None,
                       what: str = "the sums") -> None:
        """Fail unless ``rows`` rows of encoded values sum without wrapping modulo ``t`` and
        without overflowing the int64 arrays that hold the sums in the clear.

        ``plaintext_bound`` None checks the int64 limit alone (sums that are never encrypted).
        """
        limit = exact_limit(plaintext_bound)
        need = self.largest_total(rows)
        if need > limit:
            kind = ("int64 headroom" if plaintext_bound is None or limit < plaintext_bound
                    else "plaintext bound")
            raise CapacityError(
                f"{what}: {rows} rows x value range 1 x scale 2^{self.scale_bits} squared "
                f"can reach {need} (2^{need.bit_length()}), beyond the {kind} "
                f"{limit} (2^{limit.bit_length()}); use fewer scale bits "
                f"(at most {largest_scale_bits(rows, limit)}), fewer rows or a larger modulus")


def exact_limit(plaintext_bound: int | None = None) -> int:
    """The largest |total| that is exact end to end: below the plaintext bound (if encrypted)
    and below 2^62, so int64 sums and their additions across rounds cannot overflow."""
    if plaintext_bound is None:
        return INT64_HEADROOM
    return min(plaintext_bound, INT64_HEADROOM)


def largest_scale_bits(rows: int, plaintext_bound: int, cap: int = 20) -> int:
    """The most fractional bits for which ``rows`` rows still fit under ``plaintext_bound``
    (and the int64 limit of :func:`exact_limit`)."""
    limit = exact_limit(plaintext_bound)
    bits = min(cap, _MAX_SCALE_BITS)
    while bits > 0 and rows << (2 * bits) > limit:
        bits -= 1
    if bits == 0:
        raise CapacityError(f"{rows} rows do not fit the limit {limit} "
                            "even with one fractional bit")
    return bits


def _pieces(q: np.ndarray, value_bits: int) -> list[np.ndarray]:
    """Split |q| <= 2**value_bits into as few base-2**k digits as keep |digit| <= 2**20.

    Low digits are unsigned, the top one signed; ``q = sum(digit_i << (k * i))``.
    """
    count, width = _piece_layout(value_bits)
    mask = (1 << width) - 1
    pieces = []
    rest = q
    for _ in range(count - 1):
        pieces.append((rest & mask).astype(np.float64))
        rest = rest >> width
    pieces.append(rest.astype(np.float64))
    return pieces


def _piece_layout(value_bits: int) -> tuple[int, int]:
    """How many digits, and how many bits each, split a ``value_bits``-bit value."""
    count = max(1, -(-value_bits // _PIECE_BITS))
    return count, -(-value_bits // count)


def exact_gram(q: np.ndarray, value_bits: int) -> np.ndarray:
    """``qᵀq`` as exact int64 for |q| <= 2**value_bits, computed with float64 BLAS.

    numpy's int64 matmul does not use BLAS and is ~50x slower. Blocks of 2**12 rows of digits
    of at most 2**20 keep every partial sum at most 2**52, which float64 holds exactly; for
    ``value_bits <= 20`` that is one symmetric rank-k update (BLAS ``dsyrk``) per block, wider
    values split into digits whose products recombine with shifts into the exact integers.
    """
    n, width = q.shape
    _, shift = _piece_layout(value_bits)
    gram = np.zeros((width, width), dtype=np.int64)
    for start in range(0, n, _ROW_BLOCK):
        pieces = _pieces(q[start:start + _ROW_BLOCK], value_bits)
        for i, left in enumerate(pieces):
            # left is C-ordered (rows, L): its transpose is Fortran-ordered, so no copy.
            upper = dsyrk(1.0, left.T, trans=0)
            gram += np.triu(upper).astype(np.int64) << (2 * shift * i)
            for j in range(i + 1, len(pieces)):
                product = (left.T @ pieces[j]).astype(np.int64)
                gram += np.triu(product + product.T) << (shift * (i + j))
    upper_only = np.triu(gram, 1)
    return gram + upper_only.T


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
