"""Unaligned multi-byte loads and stores on uint8 arrays, for the compiled walkers.

Assembled byte by byte (``buf[p] << 8 | buf[p + 1]``), a 32-bit field costs four loads, and an
8-byte copy eight loads and eight stores that the compiler cannot merge (the arrays might
overlap). Packet fields sit at arbitrary offsets, so these emit one unaligned load (plus a
byte swap for network order) or one unaligned store, as C code reading packets does. Callers
keep every access inside the array; nothing here checks bounds.
"""

from __future__ import annotations

import sys

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

_LITTLE_ENDIAN_HOST = sys.byteorder == "little"


def _pointer(context, builder, array_type, array, index_type, index, width: int):
    data = context.make_array(array_type)(context, builder, array).data
    offset = context.cast(builder, index, index_type, types.intp)
    return builder.bitcast(builder.gep(data, [offset]), ir.IntType(width).as_pointer())


def _loader(width: int, big_endian: bool):
    result = {16: types.int64, 32: types.int64, 64: types.uint64}[width]

    @intrinsic
    def load(typingctx, array, index):
        def codegen(context, builder, sig, args):
            pointer = _pointer(context, builder, sig.args[0], args[0], sig.args[1], args[1],
                               width)
            value = builder.load(pointer, align=1)
            if big_endian == _LITTLE_ENDIAN_HOST:
                value = builder.bswap(value)
            return builder.zext(value, ir.IntType(64)) if width < 64 else value

        return result(array, index), codegen

    return load


load_be16 = _loader(16, big_endian=True)
load_be32 = _loader(32, big_endian=True)
load_le16 = _loader(16, big_endian=False)
load_le32 = _loader(32, big_endian=False)
load_word = _loader(64, big_endian=not _LITTLE_ENDIAN_HOST)  # 8 bytes as they lie


@intrinsic
def store_word(typingctx, array, index, value):
    """Store the 8 bytes ``value`` (from :func:`load_word`) at ``array[index]``."""

    def codegen(context, builder, sig, args):
        pointer = _pointer(context, builder, sig.args[0], args[0], sig.args[1], args[1], 64)
        word = context.cast(builder, args[2], sig.args[2], types.uint64)
        builder.store(word, pointer, align=1)
        return context.get_dummy_value()

    return types.none(array, index, value), codegen
