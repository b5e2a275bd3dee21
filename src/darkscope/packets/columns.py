"""Preallocated column arrays the compiled walkers fill, and their zero-copy turn into Arrow.

Arrays are allocated with ``np.empty``: pages that no packet touches (IPv6 addresses in an IPv4
capture, TCP options of option-less SYNs) never become resident. Null slots hold garbage that
Arrow's validity bitmaps hide; nothing reads them.
"""

from __future__ import annotations

import sys

import numpy as np
import pyarrow as pa

from darkscope.packets import _kernels as k
from darkscope.packets.schema import PACKET_SCHEMA

_ROW_PAD = 80
_OWN_REFERENCES = 4  # attribute, tuple of _arrays(), loop variable, getrefcount argument


class Columns:
    """One batch worth of rows, written by the walkers from ``rows`` on."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.rows = 0
        # Rows of the 2-D blocks are one column each. A padded row length keeps the columns
        # from sitting a power of two apart, where their write streams would evict one
        # another from the same cache sets (this alone doubles the walkers' speed).
        stride = capacity + _ROW_PAD
        self.ts = np.empty(capacity, np.int64)
        self.rec_off = np.empty(capacity, np.int64)  # scratch: where each record's frame starts
        self.u32 = np.empty((k.N_U32, stride), np.uint32)
        self.u16 = np.empty((k.N_U16, stride), np.uint16)
        self.u8 = np.empty((k.N_U8, stride), np.uint8)
        self.val = np.empty(capacity, np.uint32)
        self.v6 = np.empty((4, capacity, 16), np.uint8)
        self.head_data = np.empty(capacity * k.HEAD_BYTES, np.uint8)
        self.head_off = self._offsets(capacity)
        self.opt_data = np.empty(capacity * k.OPTS_MAX, np.uint8)
        self.opt_off = self._offsets(capacity)
        self.lay_data = np.empty(capacity * k.LAYOUT_MAX, np.uint8)
        self.lay_off = self._offsets(capacity)

    @staticmethod
    def _offsets(capacity: int) -> np.ndarray:
        offsets = np.empty(capacity + 1, np.int32)
        offsets[0] = 0
        return offsets

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return (self.ts, self.rec_off, self.u32, self.u16, self.u8, self.val, self.v6,
                self.head_data, self.head_off, self.opt_data, self.opt_off, self.lay_data,
                self.lay_off)

    def released(self) -> bool:
        """True when no Arrow array built by :meth:`to_batch` is alive any more.

        Arrow buffers made by ``pa.py_buffer`` hold a reference to their numpy array (directly
        or through a view), so an array referenced only by this object is free to be reused.
        """
        return all(sys.getrefcount(array) <= _OWN_REFERENCES for array in self._arrays())

    def kernel_args(self) -> tuple[np.ndarray, ...]:
        """The column arguments every walker takes, in order."""
        return (self.rec_off, self.ts, self.u32, self.u16, self.u8, self.val, self.v6,
                self.head_data, self.head_off, self.opt_data, self.opt_off, self.lay_data,
                self.lay_off, k.TOKEN_BYTES, k.TOKEN_LENS)

    def to_batch(self) -> pa.RecordBatch:
        n = self.rows
        bits = np.zeros((k.N_VAL, (n + 7) // 8), np.uint8)
        present = np.zeros(k.N_VAL, np.int64)
        k.validity_bitmaps(self.val, n, bits, present)

        def validity(flag: int) -> tuple[pa.Buffer | None, int]:
            if present[flag] == n:
                return None, 0
            return pa.py_buffer(bits[flag]), n - int(present[flag])

        def prim(typ: pa.DataType, data: np.ndarray, flag: int | None) -> pa.Array:
            bitmap, nulls = validity(flag) if flag is not None else (None, 0)
            return pa.Array.from_buffers(typ, n, [bitmap, pa.py_buffer(data)], null_count=nulls)

        def boolean(data: np.ndarray, flag: int) -> pa.Array:
            bitmap, nulls = validity(flag)
            bits = pa.py_buffer(np.packbits(data, bitorder="little"))
            return pa.Array.from_buffers(pa.bool_(), n, [bitmap, bits], null_count=nulls)

        def variable(typ: pa.DataType, offsets: np.ndarray, data: np.ndarray,
                     flag: int) -> pa.Array:
            bitmap, nulls = validity(flag)
            used = int(offsets[n])
            return pa.Array.from_buffers(
                typ, n, [bitmap, pa.py_buffer(offsets[: n + 1]), pa.py_buffer(data[:used])],
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
            "fragment": boolean(u8[k.U8_FRAG], k.V_FRAGINFO),
            "ip_len": prim(pa.uint32(), u32[k.U32_IPLEN], k.V_IP),
            "payload_len": prim(pa.uint32(), u32[k.U32_PAYLEN], k.V_PAYLEN),
            "sport": prim(pa.uint16(), u16[k.U16_SPORT], k.V_PORTS),
            "dport": prim(pa.uint16(), u16[k.U16_DPORT], k.V_PORTS),
            "tcp_flags": prim(pa.uint8(), u8[k.U8_FLAGS], k.V_TCP),
            "seq": prim(pa.uint32(), u32[k.U32_SEQ], k.V_TCP),
            "ack": prim(pa.uint32(), u32[k.U32_ACK], k.V_TCP),
            "win": prim(pa.uint16(), u16[k.U16_WIN], k.V_TCP),
            "tcp_opts": variable(pa.binary(), self.opt_off, self.opt_data, k.V_TCP),
            "tcp_layout": variable(pa.string(), self.lay_off, self.lay_data, k.V_TCP),
            "tcp_mss": prim(pa.uint16(), u16[k.U16_MSS], k.V_MSS),
            "tcp_wscale": prim(pa.uint8(), u8[k.U8_WSCALE], k.V_WSCALE),
            "tcp_sack_ok": boolean(u8[k.U8_SACKOK], k.V_TCP),
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
            "payload_head": variable(pa.binary(), self.head_off, self.head_data, k.V_PAYLEN),
        }
        return pa.RecordBatch.from_arrays([arrays[f.name] for f in PACKET_SCHEMA],
                                          schema=PACKET_SCHEMA)
