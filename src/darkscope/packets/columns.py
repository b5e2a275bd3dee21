"""Preallocated column arrays the compiled walkers fill, and their zero-copy turn into Arrow.

A batch's arrays are views of one anonymous memory map that asks the kernel for transparent
huge pages: a full table (``read``) touches fresh memory for every batch, and 2 MiB pages cost a
few hundred page faults per batch instead of tens of thousands (-25 % read time measured).
Pages that no packet touches (IPv6 addresses in an IPv4 capture, TCP options of option-less
SYNs) are never faulted in. Null slots hold garbage that Arrow's validity bitmaps hide; nothing
reads them. Per-row scratch (frame offsets, validity flags) is shared by all batches of a
reader, since only the batch being filled uses it.

Fresh memory is zeroed by the kernel page by page, about a quarter of the CPU time of a read.
So, as Arrow's own allocators do, memory is kept for reuse: a mapping whose last Arrow array is
gone goes back to a small pool (``MADV_FREE``: the kernel may still take its pages back under
memory pressure) and the next batch (or a later reader's scratch) is carved from it. A process
that reads capture after capture stops paying for fresh pages.
"""

from __future__ import annotations

import mmap
import sys
import threading
import weakref

import numpy as np
import pyarrow as pa

from darkscope.packets import _kernels as k
from darkscope.packets.schema import PACKET_SCHEMA

_ROW_PAD = 80
_ALIGN = 64
# Mappings kept for reuse per size (a batch's: about 200 MiB of address space, at most ~40 MiB
# of it touched).
POOLED_MAPPINGS = 16
# Reentrant: a mapping's finalizer may run (a garbage collection) inside a locked section.
_pool_lock = threading.RLock()
_free_mappings: dict[int, list[mmap.mmap]] = {}


class Scratch:
    """Per-row arrays the walkers need while a batch is filled, never exported to Arrow."""

    def __init__(self, capacity: int) -> None:
        _, arrays = _arena([
            ((capacity,), np.int64),               # rec_off: where each record's frame starts
            ((capacity,), np.int64),               # rec_spare: the same, second half of a scan
            ((capacity,), np.uint32),              # val: validity and boolean bits, 1 << k.V_*
            # where each row's payload head and options are in the buffer, and their lengths
            # and that of the option layout text: packed into the exported arrays once the
            # rows are decoded
            ((capacity,), np.int64),
            ((capacity,), np.int64),
            ((capacity,), np.uint8),
            ((capacity,), np.uint8),
            ((capacity,), np.uint8),
        ])
        (self.rec_off, self.rec_spare, self.val, self.head_pos, self.opt_pos,
         self.head_len, self.opt_len, self.lay_len) = arrays
        # offsets of a batch without any variable-length data (never written: zero pages)
        self.zero_offsets = np.zeros(capacity + 1, np.int32)


def _mapping(size: int) -> mmap.mmap:
    with _pool_lock:
        free = _free_mappings.get(size)
        if free:
            return free.pop()
    memory = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_HUGEPAGE"):
        memory.madvise(mmap.MADV_HUGEPAGE)
    return memory


def _pool_mapping(memory: mmap.mmap, size: int) -> None:
    """Keep a mapping whose arrays are all gone for the next batch (or let it be unmapped)."""
    with _pool_lock:
        free = _free_mappings.setdefault(size, [])
        if len(free) >= POOLED_MAPPINGS:
            return
        if hasattr(mmap, "MADV_FREE"):
            memory.madvise(mmap.MADV_FREE)
        free.append(memory)


def _arena(layout: list[tuple[tuple[int, ...], type]]) -> tuple[np.ndarray, list[np.ndarray]]:
    """One huge-page-backed anonymous mapping carved into arrays of the given shapes; returns
    the mapping's array (every carved array's ``base``) and the arrays. When that array dies,
    the mapping goes back to the pool."""
    sizes = [int(np.prod(shape)) * np.dtype(dtype).itemsize for shape, dtype in layout]
    starts = np.concatenate([[0], np.cumsum([-(-size // _ALIGN) * _ALIGN for size in sizes])])
    size = max(int(starts[-1]), 1)
    memory = _mapping(size)
    whole = np.frombuffer(memory, np.uint8)
    weakref.finalize(whole, _pool_mapping, memory, size).atexit = False
    arrays = [whole[start:start + size].view(dtype).reshape(shape)
              for (shape, dtype), start, size in zip(layout, starts[:-1], sizes, strict=True)]
    return whole, arrays


class Columns:
    """One batch worth of rows, written by the walkers from ``rows`` on."""

    def __init__(self, capacity: int, scratch: Scratch | None = None) -> None:
        self.capacity = capacity
        self.rows = 0
        self.scratch = scratch or Scratch(capacity)
        # Rows of the 2-D blocks are one column each. A padded row length keeps the columns
        # from sitting a power of two apart, where their write streams would evict one
        # another from the same cache sets (this alone doubles the walkers' speed).
        stride = capacity + _ROW_PAD
        self._memory, arrays = _arena([
            ((capacity,), np.int64),                     # ts
            ((k.N_U32, stride), np.uint32),
            ((k.N_U16, stride), np.uint16),
            ((k.N_U8, stride), np.uint8),
            ((k.N_VAL, (capacity + 63) // 64 * 8), np.uint8),  # validity, boolean bitmaps
            ((capacity + 1,), np.int32),
            ((capacity + 1,), np.int32),
            ((capacity + 1,), np.int32),
            ((4, capacity, 16), np.uint8),               # IPv6 addresses
            ((capacity * k.HEAD_BYTES,), np.uint8),
            ((capacity * k.OPTS_MAX,), np.uint8),
            ((capacity * k.LAYOUT_MAX,), np.uint8),
        ])
        (self.ts, self.u32, self.u16, self.u8, self.bits, self.head_off, self.opt_off,
         self.lay_off, self.v6, self.head_data, self.opt_data, self.lay_data) = arrays
        self._views = len(arrays)
        for offsets in (self.head_off, self.opt_off, self.lay_off):
            offsets[0] = 0
        self.var_rows = np.zeros(1, np.int64)  # rows whose variable-length offsets are written
        self.reset()  # a pooled mapping holds an earlier batch's bits

    def reset(self) -> None:
        """Empty the batch for reuse once its Arrow arrays are gone."""
        self.rows = 0
        self.bits[:] = 0
        self.var_rows[0] = 0

    def released(self) -> bool:
        """True when no Arrow array built by :meth:`to_batch` is alive any more.

        Every array here is a view whose ``base`` is the mapping's array, and so is every
        buffer :meth:`to_batch` hands to Arrow; when only this object's own views refer to the
        mapping, the memory is free to be reused.
        """
        # the attribute, getrefcount's argument, and one per view held here
        return sys.getrefcount(self._memory) <= 2 + self._views

    def kernel_args(self) -> tuple[np.ndarray, ...]:
        """The column arguments every walker takes, in order."""
        scratch = self.scratch
        return (scratch.rec_off, self.ts, self.u32, self.u16, self.u8, scratch.val, self.v6,
                scratch.head_pos, scratch.head_len, scratch.opt_pos, scratch.opt_len,
                scratch.lay_len, self.bits, self.head_off, self.opt_off,
                self.lay_off, self.head_data, self.opt_data, self.lay_data, self.var_rows)

    def to_batch(self) -> pa.RecordBatch:
        n = self.rows
        nbytes = (n + 7) // 8
        # valid rows per flag: bits past the last row are zero, so whole words can be counted
        present = np.bitwise_count(self.bits.view(np.uint64)[:, : (n + 63) // 64]).sum(axis=1)
        var_rows = int(self.var_rows[0])
        offsets = {}
        for name in ("head_off", "opt_off", "lay_off"):
            if var_rows == 0:
                offsets[name] = self.scratch.zero_offsets[: n + 1]
            else:
                written = getattr(self, name)
                written[var_rows + 1: n + 1] = written[var_rows]  # rows left without data
                offsets[name] = written[: n + 1]

        def validity(flag: int) -> tuple[pa.Buffer | None, int]:
            if present[flag] == n:
                return None, 0
            return pa.py_buffer(self.bits[flag, :nbytes]), n - int(present[flag])

        def prim(typ: pa.DataType, data: np.ndarray, flag: int | None) -> pa.Array:
            bitmap, nulls = validity(flag) if flag is not None else (None, 0)
            return pa.Array.from_buffers(typ, n, [bitmap, pa.py_buffer(data)], null_count=nulls)

        def boolean(value: int, flag: int) -> pa.Array:
            bitmap, nulls = validity(flag)
            return pa.Array.from_buffers(pa.bool_(), n,
                                         [bitmap, pa.py_buffer(self.bits[value, :nbytes])],
                                         null_count=nulls)

        def variable(typ: pa.DataType, name: str, data: np.ndarray, flag: int) -> pa.Array:
            bitmap, nulls = validity(flag)
            used = int(offsets[name][n])
            return pa.Array.from_buffers(
                typ, n, [bitmap, pa.py_buffer(offsets[name]), pa.py_buffer(data[:used])],
                null_count=nulls)

        def ipv6(slot: int, flag: int) -> pa.Array:
            return prim(pa.binary(16), self.v6[slot, :n], flag)

        u32, u16, u8 = self.u32[:, :n], self.u16[:, :n], self.u8[:, :n]
        arrays = {
            "ts": prim(pa.timestamp("ns", tz="UTC"), self.ts[:n], k.V_TS),
            "link_type": prim(pa.uint16(), u16[k.U16_LINKTYPE], None),
            "cap_len": prim(pa.uint32(), u32[k.U32_CAPLEN], None),
            "wire_len": prim(pa.uint32(), u32[k.U32_WIRELEN], None),
            "vlan": prim(pa.uint16(), u16[k.U16_VLAN], k.V_VLAN),
            "ip_version": prim(pa.uint8(), u8[k.U8_IPVER], k.V_IP),
            "src": prim(pa.uint32(), u32[k.U32_SRC], k.V_V4),
            "dst": prim(pa.uint32(), u32[k.U32_DST], k.V_V4),
            "src6": ipv6(k.V6_SRC, k.V_V6),
            "dst6": ipv6(k.V6_DST, k.V_V6),
            "proto": prim(pa.uint8(), u8[k.U8_PROTO], k.V_IP),
            "ttl": prim(pa.uint8(), u8[k.U8_TTL], k.V_IP),
            "tos": prim(pa.uint8(), u8[k.U8_TOS], k.V_IP),
            "ip_id": prim(pa.uint16(), u16[k.U16_IPID], k.V_IPID),
            "ip_flags": prim(pa.uint8(), u8[k.U8_IPFLAGS], k.V_FRAGINFO),
            "frag_offset": prim(pa.uint16(), u16[k.U16_FRAGOFF], k.V_FRAGINFO),
            "fragment": boolean(k.B_FRAGMENT, k.V_FRAGINFO),
            "ip_len": prim(pa.uint32(), u32[k.U32_IPLEN], k.V_IP),
            "payload_len": prim(pa.uint32(), u32[k.U32_PAYLEN], k.V_PAYLEN),
            "sport": prim(pa.uint16(), u16[k.U16_SPORT], k.V_PORTS),
            "dport": prim(pa.uint16(), u16[k.U16_DPORT], k.V_PORTS),
            "tcp_flags": prim(pa.uint8(), u8[k.U8_FLAGS], k.V_TCP),
            "seq": prim(pa.uint32(), u32[k.U32_SEQ], k.V_TCP),
            "ack": prim(pa.uint32(), u32[k.U32_ACK], k.V_TCP),
            "win": prim(pa.uint16(), u16[k.U16_WIN], k.V_TCP),
            "tcp_opts": variable(pa.binary(), "opt_off", self.opt_data, k.V_TCP),
            "tcp_layout": variable(pa.string(), "lay_off", self.lay_data, k.V_TCP),
            "tcp_mss": prim(pa.uint16(), u16[k.U16_MSS], k.V_MSS),
            "tcp_wscale": prim(pa.uint8(), u8[k.U8_WSCALE], k.V_WSCALE),
            "tcp_sack_ok": boolean(k.B_SACK_OK, k.V_TCP),
            "tcp_tsval": prim(pa.uint32(), u32[k.U32_TSVAL], k.V_TSOPT),
            "tcp_tsecr": prim(pa.uint32(), u32[k.U32_TSECR], k.V_TSOPT),
            "icmp_type": prim(pa.uint8(), u8[k.U8_ICMPTYPE], k.V_ICMP),
            "icmp_code": prim(pa.uint8(), u8[k.U8_ICMPCODE], k.V_ICMP),
            "inner_src": prim(pa.uint32(), u32[k.U32_INNER_SRC], k.V_INNER4),
            "inner_dst": prim(pa.uint32(), u32[k.U32_INNER_DST], k.V_INNER4),
            "inner_src6": ipv6(k.V6_INNER_SRC, k.V_INNER6),
            "inner_dst6": ipv6(k.V6_INNER_DST, k.V_INNER6),
            "inner_proto": prim(pa.uint8(), u8[k.U8_INNER_PROTO], k.V_INNER_PROTO),
            "inner_sport": prim(pa.uint16(), u16[k.U16_INNER_SPORT], k.V_INNER_PORTS),
            "inner_dport": prim(pa.uint16(), u16[k.U16_INNER_DPORT], k.V_INNER_PORTS),
            "payload_head": variable(pa.binary(), "head_off", self.head_data, k.V_PAYLEN),
        }
        return pa.RecordBatch.from_arrays([arrays[f.name] for f in PACKET_SCHEMA],
                                          schema=PACKET_SCHEMA)
