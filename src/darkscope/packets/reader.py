"""Stream captures into Arrow record batches: bounded memory, compiled per-record work.

A plain file is read through a mapped window, a compressed one into one reusable buffer; the
compiled walker consumes whole records and stops at the window's end, a full batch, or something
it leaves to Python (pcapng section and interface blocks, corrupt records). The next window
starts at the first record not consumed (a buffer moves such a record's bytes to its front), so
memory stays at one window plus one batch whatever the input size.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import signal
import stat
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa

from darkscope.errors import CaptureFormatError, UsageError
from darkscope.packets import _kernels as k
from darkscope.packets.columns import Columns, Scratch
from darkscope.packets.schema import PACKET_SCHEMA
from darkscope.packets.sources import PCAP_MAGICS, PCAPNG_MAGIC, CaptureStream, expand_inputs
from darkscope.progress import Tracker

OnError = Literal["raise", "skip"]

DEFAULT_BATCH_ROWS = 1 << 19
DEFAULT_BUFFER_BYTES = 1 << 24
MAX_BUFFER_BYTES = 1 << 28
# numba's default (workqueue) threading layer runs one parallel region at a time per process:
# readers in several Python threads take turns in the compiled kernels instead of aborting.
_WALKER_LOCK = threading.Lock()
# Readers use 262144 as the largest sane snap length; allow captures that declare more.
MAX_SNAPLEN = 1 << 24
# Where leases cannot say whether a file is being written: map it once unchanged this long.
SETTLED_S = 60.0

_STATUS_TEXT = {
    k.ST_BAD_FRAC: "record timestamp fraction is not below one second",
    k.ST_BAD_CAPLEN: "record captured length exceeds the snap length",
    k.ST_BAD_WIRELEN: "record captured length exceeds its original length, or the original "
                      "length is absurd",
    k.ST_BAD_BLOCKLEN: "block length is not a multiple of 4 or too small for its type",
    k.ST_BAD_TRAILER: "block trailing length differs from its leading length (corrupt block)",
    k.ST_BAD_IFACE: "packet block names an interface that no interface description defined",
    k.ST_BAD_PKTLEN: "packet data is longer than its block",
}


@dataclass
class ReadReport:
    """What a read covered, and what it had to skip (with ``on_error="skip"``)."""

    files: int = 0
    packets: int = 0
    bytes: int = 0
    skipped_records: int = 0
    skipped_bytes: int = 0
    problems: list[CaptureFormatError] = field(default_factory=list)


@dataclass
class _Sink:
    """The batch being filled; replaced by the reader each time a full batch is taken."""

    cols: Columns


class _Buffer:
    """A growable window onto a stream; ``base`` is the stream offset of ``data[0]``."""

    def __init__(self, stream: CaptureStream, size: int) -> None:
        self.stream = stream
        self.data = np.empty(size, np.uint8)
        self.base = 0
        self.pos = 0
        self.end = 0
        self.eof = False

    @property
    def offset(self) -> int:
        return self.base + self.pos

    def available(self) -> int:
        return self.end - self.pos

    def refill(self) -> bool:
        """Keep the unconsumed tail, read more after it; False when nothing new arrived."""
        if self.eof:
            return False
        tail = self.end - self.pos
        if self.pos:
            self.data[:tail] = self.data[self.pos:self.end]
            self.base += self.pos
            self.pos, self.end = 0, tail
        if self.end == len(self.data):
            if len(self.data) >= MAX_BUFFER_BYTES:
                raise CaptureFormatError(self.stream.path, "record larger than "
                                         f"{MAX_BUFFER_BYTES} bytes", self.offset)
            grown = np.empty(len(self.data) * 2, np.uint8)
            grown[: self.end] = self.data[: self.end]
            self.data = grown
        got = self.stream.readinto(memoryview(self.data)[self.end:])
        if got == 0:
            self.eof = True
            return False
        self.end += got
        return True

    def ensure(self, n: int) -> bool:
        """Make ``n`` bytes available at ``pos``; False if the stream ends first."""
        while self.available() < n:
            if not self.refill():
                return False
        return True

    def bytes_at(self, start: int, n: int) -> bytes:
        """Up to ``n`` bytes at ``pos + start``, never past what was read."""
        return self.data[self.pos + start: min(self.pos + start + n, self.end)].tobytes()

    def raw_position(self) -> int:
        """How far into the file on disk reading has got (for progress)."""
        return self.stream.raw_position()


# Linux >= 5.14: fill the page table of a mapping from the page cache in one call.
_MADV_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22)


class _MappedBuffer(_Buffer):
    """A plain (uncompressed) capture file read through windows mapped into memory: the
    walkers read the page cache in place instead of a copy of it (the copy was about 15 % of
    reading a capture of SYNs). A window is ``size`` bytes from the first unconsumed byte, so
    memory stays bounded as with the copying buffer; windows are private mappings (writable
    arrays, as the walkers are compiled for) that are never written."""

    def __init__(self, stream: CaptureStream, size: int) -> None:
        super().__init__(stream, 0)
        self.size = size
        self._fileno = stream.fileno()

    def refill(self) -> bool:
        if self.eof:
            return False
        start = self.base + self.pos
        if self.end - self.pos >= self.size:  # one record longer than a window
            if self.size >= MAX_BUFFER_BYTES:
                raise CaptureFormatError(self.stream.path, "record larger than "
                                         f"{MAX_BUFFER_BYTES} bytes", self.offset)
            self.size *= 2
        aligned = start - start % mmap.ALLOCATIONGRANULARITY
        for _attempt in range(3):
            length = os.fstat(self._fileno).st_size  # a live capture may have grown
            if self.base + self.end >= length:
                self.eof = True
                return False
            stop = min(start + self.size, length)
            try:
                window = mmap.mmap(self._fileno, stop - aligned, offset=aligned,
                                   access=mmap.ACCESS_COPY)
                window.madvise(_MADV_POPULATE_READ)
                break
            except ValueError:  # the file shrank since fstat: map what is left
                continue
            except OSError as exc:
                if exc.errno == errno.EINVAL:  # a kernel before 5.14: pages fault in when read
                    break
                if exc.errno != errno.EFAULT:
                    raise
                if os.fstat(self._fileno).st_size < stop:
                    continue  # pages past a new, shorter end
                raise CaptureFormatError(self.stream.path, "cannot read the file's pages "
                                         "(I/O error)", start) from None
        else:
            raise CaptureFormatError(self.stream.path, "file keeps shrinking while it is read",
                                     self.offset)
        self.data = np.frombuffer(window, np.uint8)
        self.base, self.pos, self.end = aligned, start - aligned, stop - aligned
        return True

    def raw_position(self) -> int:
        return self.base + self.end


def _open_buffer(stream: CaptureStream, size: int) -> _Buffer:
    """Map plain regular files that nothing is writing (read in place); copy from anything
    else. A mapped page that a truncation removes kills the process (SIGBUS) when read, so
    a capture still being written, and so possibly rotated with copytruncate, is copied."""
    if stream.compression is not None:
        return _Buffer(stream, size)
    info = os.fstat(stream.fileno())
    if not stat.S_ISREG(info.st_mode):
        return _Buffer(stream, size)
    writers = _has_writers(stream.fileno())
    if writers is None:  # cannot tell: trust only a file that has not changed for a while
        writers = time.time() - info.st_mtime < SETTLED_S
    return _Buffer(stream, size) if writers else _MappedBuffer(stream, size)


def _has_writers(fd: int) -> bool | None:
    """Whether any process has the file open for writing now; None where the system cannot
    tell. Linux grants a read lease only on a file nobody has open for writing; the lease is
    given back at once. A writer opening the file in between breaks the lease with a signal,
    SIGIO unless told otherwise, and SIGIO kills a process; SIGURG is ignored by default."""
    if not hasattr(fcntl, "F_SETLEASE") or not hasattr(fcntl, "F_SETSIG"):
        return None
    try:
        fcntl.fcntl(fd, fcntl.F_SETSIG, signal.SIGURG)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError as exc:  # EACCES: not the file's owner; EINVAL: no leases on this fs
        return True if exc.errno == errno.EAGAIN else None
    fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
    return False


class Incomplete(Exception):
    """A growing capture ends inside a record: the bytes from ``buf.offset`` on are kept for
    the next read (see :mod:`darkscope.packets.follow`)."""


class _FileDecoder:
    """Shared error policy: raise, or record the problem, count what is skipped and go on.

    ``growing``: the file is still being written, so a record cut off at its end is not an
    error but unfinished (:class:`Incomplete`, nothing consumed). ``header_blocks`` keeps the
    raw header (pcap file header; pcapng section header and interface blocks) so that a later
    read can start in the middle of the file.
    """

    max_record = 1 << 16  # the longest record expected; formats set their own

    def __init__(self, path: Path, buf: _Buffer, on_error: OnError, report: ReadReport,
                 growing: bool = False) -> None:
        self.path = path
        self.buf = buf
        self.on_error = on_error
        self.report = report
        self.growing = growing
        self.header_blocks: list[bytes] = []

    def problem(self, message: str, offset: int, skipped_bytes: int = 0,
                skipped_records: int = 1) -> None:
        error = CaptureFormatError(self.path, message, offset)
        if self.on_error == "raise":
            raise error
        self.report.problems.append(error)
        self.report.skipped_records += skipped_records
        self.report.skipped_bytes += skipped_bytes

    def walk(self, sink: _Sink, walker, format_args: tuple, extra: tuple = ()) -> int:
        """One compiled walker call over the buffer into ``sink.cols``; returns its status."""
        buf, cols = self.buf, sink.cols
        with _WALKER_LOCK:
            pos, rows, status = walker(buf.data, buf.pos, buf.end, *format_args, cols.capacity,
                                       cols.rows, *cols.kernel_args(), *extra)
        self.report.packets += rows - cols.rows
        cols.rows = rows
        buf.pos = pos
        return status

    def truncated_end(self, what: str) -> None:
        if self.growing:
            raise Incomplete(what)
        remaining = self.buf.available()
        self.problem(f"file ends inside {what}", self.buf.offset, skipped_bytes=remaining)
        self.buf.pos = self.buf.end

    def resync(self, finder, step: int, *args: object) -> None:
        """Skip forward from a corrupt record to the next plausible one (or the end);
        ``step`` is the format's alignment (pcapng blocks start on 4-byte boundaries)."""
        buf = self.buf
        start = buf.offset
        search_from = buf.pos + step
        while True:
            found = finder(buf.data, search_from, buf.end, *args)
            if found >= 0:
                buf.pos = found
                break
            # Keep a window a record long: a candidate near the end could not be confirmed yet.
            keep_from = max(search_from, buf.end - 2 * (16 + self.max_record))
            buf.pos = keep_from
            if not buf.refill():
                buf.pos = buf.end
                break
            search_from = buf.pos
        self.report.skipped_bytes += buf.offset - start


class _PcapDecoder(_FileDecoder):
    def __init__(self, path: Path, buf: _Buffer, on_error: OnError, report: ReadReport,
                 growing: bool = False) -> None:
        super().__init__(path, buf, on_error, report, growing)
        header = buf.bytes_at(0, 24)
        self.header_blocks = [header]
        self.swapped, self.frac_ns = PCAP_MAGICS[header[:4]]
        order = ">" if self.swapped else "<"
        major, minor, _zone, _sigfigs, snaplen, linktype = struct.unpack(order + "HHiIII",
                                                                         header[4:])
        if major != 2:
            raise CaptureFormatError(path, f"unsupported pcap version {major}.{minor}", 4)
        self.snaplen = snaplen if 0 < snaplen <= MAX_SNAPLEN else MAX_SNAPLEN
        self.max_record = self.snaplen
        self.link = linktype & 0x0FFFFFFF  # upper bits carry FCS information
        self.frac_limit = 1_000_000 if self.frac_ns == 1000 else 1_000_000_000
        buf.pos += 24
        if self.link not in k.SUPPORTED_LINK_TYPES:
            self.problem(f"unsupported link type {self.link}", 20,
                         skipped_bytes=0, skipped_records=0)
            self.unsupported = True
        else:
            self.unsupported = False

    def decode(self, sink: _Sink) -> Iterator[None]:
        """Fill ``sink.cols``; yields whenever they are full so the caller swaps in new ones."""
        buf = self.buf
        if self.unsupported:
            while buf.refill():
                buf.pos = buf.end
            return
        while True:
            status = self.walk(sink, k.walk_pcap, (self.swapped, self.frac_ns, self.frac_limit,
                                                   self.snaplen, self.link),
                               (sink.cols.scratch.rec_spare,))
            if status == k.ST_FULL:
                yield
            elif status == k.ST_NEED_MORE:
                if not buf.refill():
                    if buf.available() >= 16:
                        caplen = struct.unpack(">I" if self.swapped else "<I",
                                               buf.bytes_at(8, 4))[0]
                        self.truncated_end(f"a record (truncated: {buf.available()} of "
                                           f"{16 + caplen} bytes present)")
                    elif buf.available():
                        self.truncated_end("a record header")
                    return
            else:
                self._bad_record(status)

    def _bad_record(self, status: int) -> None:
        """Report a bad record; skip just it when its framing is sound, else resynchronise."""
        buf = self.buf
        _sec, frac, caplen, wirelen = struct.unpack(">IIII" if self.swapped else "<IIII",
                                                    buf.bytes_at(0, 16))
        details = {
            k.ST_BAD_FRAC: f" ({frac} >= {self.frac_limit})",
            k.ST_BAD_CAPLEN: f" ({caplen} > {self.snaplen})",
            k.ST_BAD_WIRELEN: f" (captured {caplen}, original {wirelen})",
        }
        framed = caplen <= self.snaplen and caplen <= wirelen <= k.MAX_WIRE_LEN
        if framed and buf.ensure(16 + caplen):
            self.problem(_STATUS_TEXT[status] + details[status], buf.offset,
                         skipped_bytes=16 + caplen)
            buf.pos += 16 + caplen
            return
        self.problem(_STATUS_TEXT[status] + details[status], buf.offset)
        self.resync(k.find_pcap_record, 1, self.swapped, self.frac_limit, self.snaplen)


class _PcapngDecoder(_FileDecoder):
    def __init__(self, path: Path, buf: _Buffer, on_error: OnError, report: ReadReport,
                 growing: bool = False) -> None:
        super().__init__(path, buf, on_error, report, growing)
        self.swapped = False
        self.interfaces: list[tuple[int, int, bool, int, int]] = []
        self.max_record = 1 << 18
        self._arrays()

    def _arrays(self) -> None:
        rows = self.interfaces or [(0, 0, False, 6, 0)]
        self.if_link = np.array([r[0] for r in rows], np.int64)
        self.if_snaplen = np.array([r[1] for r in rows], np.int64)
        self.if_pow2 = np.array([r[2] for r in rows], np.bool_)
        self.if_exp = np.array([r[3] for r in rows], np.int64)
        self.if_offset = np.array([r[4] for r in rows], np.int64)

    def _section_header(self) -> None:
        buf = self.buf
        if not buf.ensure(12):
            self.truncated_end("a section header block")
            return
        magic = buf.bytes_at(8, 4)
        if magic == b"\x4d\x3c\x2b\x1a":
            self.swapped = False
        elif magic == b"\x1a\x2b\x3c\x4d":
            self.swapped = True
        else:
            raise CaptureFormatError(self.path, "section header has no valid byte-order magic",
                                     buf.offset + 8)
        blen = self._u32(4)
        if blen < 28 or blen % 4:
            raise CaptureFormatError(self.path, f"section header length {blen} is invalid",
                                     buf.offset)
        if not buf.ensure(blen):
            self.truncated_end("a section header block")
            return
        self.interfaces = []
        self._arrays()
        self.header_blocks = [buf.bytes_at(0, blen)]
        buf.pos += blen

    def _interface(self) -> None:
        buf = self.buf
        if not buf.ensure(12):
            self.truncated_end("an interface description block")
            return
        blen = self._u32(4)
        if blen < 20 or blen % 4 or not buf.ensure(blen) or self._u32(blen - 4) != blen:
            if buf.available() < blen:
                self.truncated_end("an interface description block")
                return
            self.problem("interface description block is corrupt", buf.offset)
            self.resync(k.find_pcapng_block, 4, self.swapped)
            return
        order = ">" if self.swapped else "<"
        link, _reserved, snaplen = struct.unpack(order + "HHI", buf.bytes_at(8, 8))
        pow2, exponent, offset_ns = False, 6, 0
        options = buf.bytes_at(16, blen - 20)
        i = 0
        while i + 4 <= len(options):
            code, length = struct.unpack(order + "HH", options[i:i + 4])
            value = options[i + 4:i + 4 + length]
            if code == 0:
                break
            if code == 9 and length == 1:
                pow2, exponent = bool(value[0] & 0x80), value[0] & 0x7F
            elif code == 14 and length == 8:
                offset_ns = struct.unpack(order + "q", value)[0] * 1_000_000_000
            i += 4 + length + (-length % 4)
        if (pow2 and exponent > 62) or (not pow2 and exponent > 18):
            self.problem(f"interface {len(self.interfaces)} has unusable if_tsresol", buf.offset,
                         skipped_records=0)
            pow2, exponent = False, 6
        if link not in k.SUPPORTED_LINK_TYPES:
            self.problem(f"unsupported link type {link} (interface {len(self.interfaces)})",
                         buf.offset + 8, skipped_records=0)
            link = -1
        self.interfaces.append((link, snaplen, pow2, exponent, offset_ns))
        self._arrays()
        self.header_blocks.append(buf.bytes_at(0, blen))
        buf.pos += blen

    def _u32(self, at: int) -> int:
        return struct.unpack(">I" if self.swapped else "<I", self.buf.bytes_at(at, 4))[0]

    def decode(self, sink: _Sink) -> Iterator[None]:
        buf = self.buf
        skipped = np.zeros(2, np.int64)
        while True:
            status = self.walk(sink, k.walk_pcapng,
                               (self.swapped, self.if_link, self.if_snaplen, self.if_pow2,
                                self.if_exp, self.if_offset, len(self.interfaces)), (skipped,))
            if status == k.ST_FULL:
                yield
            elif status == k.ST_NEED_MORE:
                if not buf.refill():
                    if buf.available():
                        self.truncated_end("a block")
                    break
            elif status == k.ST_PYTHON:
                if buf.bytes_at(0, 4) == PCAPNG_MAGIC:
                    self._section_header()
                else:
                    self._interface()
            elif status in (k.ST_BAD_IFACE, k.ST_BAD_PKTLEN, k.ST_BAD_WIRELEN):
                blen = self._u32(4)  # the block's framing is sound: skip exactly this block
                self.problem(_STATUS_TEXT[status], buf.offset, skipped_bytes=blen)
                buf.pos += blen
            else:
                self.problem(_STATUS_TEXT[status], buf.offset)
                self.resync(k.find_pcapng_block, 4, self.swapped)
        if skipped[0]:
            self.report.skipped_records += int(skipped[0])
            self.report.skipped_bytes += int(skipped[1])


class CaptureReader:
    """Iterate over record batches of the packet table from one or more captures.

    ``on_error="raise"`` stops at the first problem with a :class:`CaptureFormatError` naming
    file, byte offset and cause; ``"skip"`` keeps every good packet, resynchronises after corrupt
    records and collects problems and skip counts in :attr:`report`.
    """

    def __init__(self, inputs: list[str | Path] | str | Path, *, on_error: OnError = "raise",
                 batch_rows: int = DEFAULT_BATCH_ROWS,
                 buffer_bytes: int = DEFAULT_BUFFER_BYTES, tracker: Tracker | None = None) -> None:
        if on_error not in ("raise", "skip"):
            raise UsageError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
        if batch_rows < 1:
            raise UsageError("batch_rows must be positive")
        self.paths = expand_inputs(inputs)
        self.on_error: OnError = on_error
        self.batch_rows = batch_rows
        self.buffer_bytes = buffer_bytes
        self.tracker = tracker or Tracker(None, None)
        self.report = ReadReport()
        self.schema = PACKET_SCHEMA

    def total_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.paths)

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        scratch = Scratch(self.batch_rows)  # carved from pooled memory once readers are gone
        sink = _Sink(Columns(self.batch_rows, scratch))
        spare: list[Columns] = []
        for path in self.paths:
            for _ in self._decode_file(path, sink):
                yield sink.cols.to_batch()
                spare.append(sink.cols)
                sink.cols = self._recycled(spare, scratch)
        if sink.cols.rows:
            yield sink.cols.to_batch()

    def _recycled(self, spare: list[Columns], scratch: Scratch) -> Columns:
        """Columns of a batch the consumer has dropped (streaming: no new page faults), else
        fresh ones (the batches are being kept, as by :func:`read`)."""
        for i, cols in enumerate(spare):
            if cols.released():
                del spare[i]
                cols.reset()
                return cols
        del spare[:-2]  # keep the last few candidates only
        return Columns(self.batch_rows, scratch)

    def _decode_file(self, path: Path, sink: _Sink) -> Iterator[None]:
        with CaptureStream(path) as stream:
            buf = _open_buffer(stream, self.buffer_bytes)
            reported = 0
            try:
                decoder = self._decoder(path, buf)
                if decoder is None:
                    return
                self.report.files += 1
                for _ in decoder.decode(sink):
                    yield
                    reported = self._progress(buf, reported)
            finally:
                self.report.bytes += buf.base + buf.end
                self._progress(buf, reported)

    def _progress(self, buf: _Buffer, reported: int) -> int:
        position = buf.raw_position()
        self.tracker.advance(position - reported)
        return position

    def _decoder(self, path: Path, buf: _Buffer) -> _PcapDecoder | _PcapngDecoder | None:
        buf.ensure(24)
        head = buf.bytes_at(0, 4)
        if head in PCAP_MAGICS:
            if buf.available() < 24:
                self._bad_header(path, f"file ends inside the pcap file header "
                                       f"({buf.available()} of 24 bytes)")
                return None
            return _PcapDecoder(path, buf, self.on_error, self.report)
        if head == PCAPNG_MAGIC:
            return _PcapngDecoder(path, buf, self.on_error, self.report)
        first = buf.bytes_at(0, 8)
        shown = f"starts with {first.hex(' ')}" if first else "empty file"
        self._bad_header(path, f"not a pcap or pcapng capture ({shown})")
        return None

    def _bad_header(self, path: Path, message: str) -> None:
        error = CaptureFormatError(path, message, 0)
        if self.on_error == "raise":
            raise error
        self.report.problems.append(error)
        self.report.skipped_bytes += path.stat().st_size
