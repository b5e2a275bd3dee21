"""Capture from a network interface: an AF_PACKET socket with a TPACKET_V3 memory-mapped ring.

Why this and not a libpcap binding: the Python bindings of libpcap hand packets to Python one
at a time, which caps a monitor far below a telescope's rate. With TPACKET_V3 the kernel fills
whole blocks of frames in a ring shared with this process (no copy per packet, no system call
per packet) and hands over a block when it is full or ``block_timeout_ms`` old; one compiled
pass turns a block into pcap records for the same decoders ``ingest`` uses. libpcap is used
for what it is best at: compiling a BPF filter expression (``pcap_compile``, through ctypes),
which the kernel then runs on every frame before it reaches the ring. Kernel drops (ring full)
come from ``PACKET_STATISTICS``. Linux only; needs CAP_NET_RAW (root).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import gc
import mmap
import select
import socket
import struct
from pathlib import Path

import numpy as np
import pyarrow as pa
from numba import njit

from darkscope.errors import DarkscopeError, UsageError
from darkscope.packets import _kernels as k
from darkscope.packets._bytes import load_le16, load_le32
from darkscope.packets.columns import Columns, Scratch
from darkscope.packets.reader import DEFAULT_BATCH_ROWS, ReadReport, _Buffer, _PcapDecoder, _Sink

SOL_PACKET = 263
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
TPACKET_V3 = 2
ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
TP_STATUS_KERNEL, TP_STATUS_USER = 0, 1
# /sys/class/net/IF/type (ARPHRD_*) -> the link type of its frames
_LINK_OF_ARPHRD = {1: k.LINK_ETHERNET, 772: k.LINK_ETHERNET, 65534: k.LINK_RAW}


@njit(cache=True, inline="always")
def _store_le32(out: np.ndarray, at: int, value: int) -> None:
    for b in range(4):
        out[at + b] = (value >> (8 * b)) & 0xFF


@njit(cache=True)
def _block_records(ring: np.ndarray, start: int, count: int, first: int, out: np.ndarray) -> int:
    """The frames of one ring block as little-endian nanosecond pcap records in ``out``."""
    pos = start + first
    written = 0
    for _ in range(count):
        next_offset = load_le32(ring, pos)
        sec, nsec = load_le32(ring, pos + 4), load_le32(ring, pos + 8)
        snap, length = load_le32(ring, pos + 12), load_le32(ring, pos + 16)
        mac = load_le16(ring, pos + 24)
        _store_le32(out, written, sec)
        _store_le32(out, written + 4, nsec)
        _store_le32(out, written + 8, snap)
        _store_le32(out, written + 12, length)
        out[written + 16:written + 16 + snap] = ring[pos + mac:pos + mac + snap]
        written += 16 + snap
        pos += next_offset
    return written


def compile_filter(expression: str, link: int, snaplen: int = 262144) -> bytes:
    """A BPF program for ``expression`` (tcpdump syntax), as the kernel's sock_filter array."""
    name = ctypes.util.find_library("pcap")
    if name is None:
        raise UsageError("--filter needs libpcap to compile the expression (Debian: apt "
                         "install libpcap0.8)")
    lib = ctypes.CDLL(name)

    class BpfProgram(ctypes.Structure):
        _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.c_void_p)]

    lib.pcap_open_dead.restype = ctypes.c_void_p
    lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(BpfProgram), ctypes.c_char_p,
                                 ctypes.c_int, ctypes.c_uint32]
    lib.pcap_geterr.restype = ctypes.c_char_p
    lib.pcap_geterr.argtypes = [ctypes.c_void_p]
    lib.pcap_freecode.argtypes = [ctypes.POINTER(BpfProgram)]
    lib.pcap_close.argtypes = [ctypes.c_void_p]
    handle = lib.pcap_open_dead(link, snaplen)
    program = BpfProgram()
    try:
        if lib.pcap_compile(handle, ctypes.byref(program), expression.encode(), 1,
                            0xFFFFFFFF) != 0:
            raise UsageError(f"--filter {expression!r}: {lib.pcap_geterr(handle).decode()}")
        code = ctypes.string_at(program.bf_insns, program.bf_len * 8)
        lib.pcap_freecode(ctypes.byref(program))
        return code
    finally:
        lib.pcap_close(handle)


class _BytesStream:
    """Just enough of a CaptureStream for a decoder over bytes already in memory."""

    compression = None

    def __init__(self, data: memoryview) -> None:
        self._data = data
        self._at = 0

    def readinto(self, view: memoryview) -> int:
        n = min(len(view), len(self._data) - self._at)
        view[:n] = self._data[self._at:self._at + n]
        self._at += n
        return n

    def raw_position(self) -> int:
        return self._at


class LiveCapture:
    """Frames arriving on ``interface``, block by block, as packet-table record batches."""

    def __init__(self, interface: str, *, bpf_filter: str | None = None,
                 block_bytes: int = 1 << 20, blocks: int = 64, block_timeout_ms: int = 100,
                 batch_rows: int = DEFAULT_BATCH_ROWS) -> None:
        self.interface = interface
        kind = Path(f"/sys/class/net/{interface}/type")
        if not kind.exists():
            raise UsageError(f"--interface {interface}: no such network interface")
        arphrd = int(kind.read_text())
        if arphrd not in _LINK_OF_ARPHRD:
            raise UsageError(f"--interface {interface}: link type {arphrd} (ARPHRD) is not "
                             "Ethernet, loopback or raw IP")
        self.link = _LINK_OF_ARPHRD[arphrd]
        self.batch_rows = batch_rows
        self.block_bytes, self.blocks = block_bytes, blocks
        self.kernel_packets = 0
        self.kernel_drops = 0
        self.report = ReadReport()
        try:
            self._socket = socket.socket(socket.AF_PACKET, socket.SOCK_RAW,
                                         socket.htons(ETH_P_ALL))
        except PermissionError:
            raise UsageError(f"--interface {interface}: capturing needs CAP_NET_RAW (run as "
                             "root, or setcap cap_net_raw+ep on the Python binary)") from None
        try:
            if bpf_filter:
                code = compile_filter(bpf_filter, self.link)
                self._filter = ctypes.create_string_buffer(code, len(code))
                program = struct.pack("HxxxxxxQ", len(code) // 8,
                                      ctypes.addressof(self._filter))
                self._socket.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, program)
            self._socket.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
            request = struct.pack("IIIIIII", block_bytes, blocks, 2048,
                                  block_bytes // 2048 * blocks, block_timeout_ms, 0, 0)
            self._socket.setsockopt(SOL_PACKET, PACKET_RX_RING, request)
            self._map = mmap.mmap(self._socket.fileno(), block_bytes * blocks,
                                  mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            self._ring = np.frombuffer(self._map, np.uint8)
            self._socket.bind((interface, ETH_P_ALL))
        except OSError as exc:
            self._socket.close()
            if exc.errno == errno.ENODEV:
                raise UsageError(f"--interface {interface}: no such network interface") from None
            raise DarkscopeError(f"--interface {interface}: cannot set up the capture ring "
                                 f"({exc})") from None
        self._next = 0
        self._records = np.empty(2 * block_bytes + (1 << 16), np.uint8)
        self._scratch = Scratch(batch_rows)

    def _status(self, block: int) -> int:
        return struct.unpack_from("<I", self._map, block * self.block_bytes + 8)[0]

    def read(self, timeout_s: float = 0.5) -> list[pa.RecordBatch]:
        """The frames of every block the kernel has handed over (waiting up to
        ``timeout_s`` for the first), decoded; an empty list when none arrived."""
        if not self._status(self._next) & TP_STATUS_USER:
            select.select([self._socket], [], [], timeout_s)
        # a little-endian nanosecond pcap header for the records of this read
        parts = [struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, self.link)]
        while self._status(self._next) & TP_STATUS_USER:
            start = self._next * self.block_bytes
            count, first = struct.unpack_from("<II", self._map, start + 12)
            written = _block_records(self._ring, start, count, first, self._records)
            parts.append(self._records[:written].tobytes())
            self._ring[start + 8:start + 12] = 0  # TP_STATUS_KERNEL: the kernel may refill it
            self._next = (self._next + 1) % self.blocks
            if len(parts) > self.blocks:
                break
        self._collect_statistics()
        if len(parts) == 1:
            return []
        return self._decode(memoryview(b"".join(parts)))

    def _decode(self, data: memoryview) -> list[pa.RecordBatch]:
        buf = _Buffer(_BytesStream(data), len(data) + 16)  # type: ignore[arg-type]
        buf.ensure(24)
        decoder = _PcapDecoder(Path(f"<{self.interface}>"), buf, "skip", self.report)
        sink = _Sink(Columns(self.batch_rows, self._scratch))
        batches = []
        for _ in decoder.decode(sink):
            batches.append(sink.cols.to_batch())
            sink.cols = Columns(self.batch_rows, self._scratch)
        if sink.cols.rows:
            batches.append(sink.cols.to_batch())
        return batches

    def _collect_statistics(self) -> None:
        """Add the kernel's counters since the last call (reading them resets them)."""
        packets, drops, _frozen = struct.unpack(
            "III", self._socket.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12))
        self.kernel_packets += packets
        self.kernel_drops += drops

    def close(self) -> None:
        del self._ring
        try:
            self._map.close()
        except BufferError:
            # A view of the ring outlived it (seen once in CI, after SIGTERM): unmapping under
            # it would crash the process, so the mapping goes with its last view instead.
            gc.collect()
            with contextlib.suppress(BufferError):
                self._map.close()
        self._socket.close()

    def __enter__(self) -> LiveCapture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
