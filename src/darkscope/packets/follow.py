"""Read a capture that is still being written, a piece at a time, resuming where the last
read stopped (``darkscope monitor --watch``).

Each :meth:`CaptureFollower.read` decodes the complete records appended since the previous
one with the same compiled walkers as :class:`~darkscope.packets.reader.CaptureReader`; a
record cut off at the end is left for the next read. The position is two plain values,
``offset`` (where the next record starts, in the capture stream) and ``header`` (the file's
header blocks), so a monitor can checkpoint them and resume after a crash in a new process.

A plain file is read from ``offset`` with a seek; a compressed one is decompressed from its
start and the first ``offset`` bytes discarded (compressed captures are normally finished
files, read once).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from darkscope.errors import CaptureFormatError
from darkscope.packets.columns import Columns, Scratch
from darkscope.packets.reader import (
    DEFAULT_BATCH_ROWS,
    Incomplete,
    OnError,
    ReadReport,
    _Buffer,
    _PcapDecoder,
    _PcapngDecoder,
    _Sink,
)
from darkscope.packets.sources import PCAP_MAGICS, PCAPNG_MAGIC, CaptureStream

_SKIP_CHUNK = 1 << 20


@dataclass
class FollowPosition:
    """Where reading a capture stands: JSON-friendly, for checkpoints."""

    offset: int = 0        # capture-stream offset of the first record not yet read
    header: bytes = b""    # the header blocks needed to decode from ``offset`` on


class _TailStream:
    """The capture's header blocks, then its bytes from ``offset`` to at most ``limit`` more."""

    def __init__(self, path: Path, position: FollowPosition, limit: int) -> None:
        self.path = path
        self._inner = CaptureStream(path)
        self.compression = self._inner.compression
        self._header = memoryview(position.header)
        self._header_left = len(position.header)
        self._left = limit
        start = position.offset if position.header else 0
        if self.compression is None:
            os.lseek(self._inner.fileno(), start, os.SEEK_SET)
        else:
            self._discard(start)

    def _discard(self, count: int) -> None:
        scratch = bytearray(min(count, _SKIP_CHUNK) or 1)
        while count:
            got = self._inner.readinto(memoryview(scratch)[:min(count, len(scratch))])
            if not got:
                raise CaptureFormatError(self.path, "capture is shorter than the position "
                                         "to resume from (was it replaced?)", count)
            count -= got

    def readinto(self, view: memoryview) -> int:
        if self._header_left:
            n = min(len(view), self._header_left)
            start = len(self._header) - self._header_left
            view[:n] = self._header[start:start + n]
            self._header_left -= n
            return n
        if self._left <= 0:
            return 0
        got = self._inner.readinto(view[:min(len(view), self._left)])
        self._left -= got
        return got

    def raw_position(self) -> int:
        return self._inner.raw_position()

    def fileno(self) -> int:
        return self._inner.fileno()

    def close(self) -> None:
        self._inner.close()


class CaptureFollower:
    """Decode what a growing capture gained since the last read.

    ``max_bytes`` bounds the bytes one :meth:`read` consumes (bounded memory on a backlog);
    call again until :attr:`caught_up`.
    """

    def __init__(self, path: str | Path, position: FollowPosition | None = None, *,
                 on_error: OnError = "skip", batch_rows: int = DEFAULT_BATCH_ROWS,
                 max_bytes: int = 1 << 26) -> None:
        self.path = Path(path)
        self.position = position or FollowPosition()
        self.on_error: OnError = on_error
        self.batch_rows = batch_rows
        self.max_bytes = max_bytes
        self.report = ReadReport()
        self.caught_up = False
        self.failed: CaptureFormatError | None = None  # the stream itself is damaged

    def read(self) -> list[pa.RecordBatch]:
        """The complete records added since the last read (possibly none)."""
        stream = _TailStream(self.path, self.position, self.max_bytes)
        header_len = len(self.position.header)
        buf = _Buffer(stream, 1 << 24)  # type: ignore[arg-type]  # a CaptureStream in all but name
        try:
            if not buf.ensure(header_len or 24):
                self.caught_up = True
                return []  # not even a file header yet
            decoder = self._decoder(buf)
            scratch = Scratch(self.batch_rows)
            sink = _Sink(Columns(self.batch_rows, scratch))
            batches = []
            try:
                for _ in decoder.decode(sink):
                    batches.append(sink.cols.to_batch())
                    sink.cols = Columns(self.batch_rows, scratch)
            except Incomplete:
                pass
            except CaptureFormatError as exc:
                if self.on_error == "raise":
                    raise
                # A damaged stream or section: keep what decoded, read no further.
                self.failed = exc
                self.report.problems.append(exc)
            if sink.cols.rows:
                batches.append(sink.cols.to_batch())
            consumed = buf.offset - header_len
            start = self.position.offset if header_len else 0
            if decoder.header_blocks:
                self.position = FollowPosition(start + consumed, b"".join(decoder.header_blocks))
            self.caught_up = stream._left > 0  # the read stopped at the file's end, not a limit
            # Offsets in the replayed stream -> offsets in the file (plain or decompressed).
            shift = start - header_len
            self.report.problems.extend(
                CaptureFormatError(p.path, p.reason, None if p.offset is None else
                                   p.offset + shift if p.offset >= header_len else p.offset)
                for p in decoder.report.problems)
            self.report.skipped_records += decoder.report.skipped_records
            self.report.skipped_bytes += decoder.report.skipped_bytes
            self.report.packets += decoder.report.packets
            return batches
        finally:
            stream.close()

    def _decoder(self, buf: _Buffer) -> _PcapDecoder | _PcapngDecoder:
        head = buf.bytes_at(0, 4)
        report = ReadReport()
        if head in PCAP_MAGICS:
            return _PcapDecoder(self.path, buf, self.on_error, report, growing=True)
        if head == PCAPNG_MAGIC:
            return _PcapngDecoder(self.path, buf, self.on_error, report, growing=True)
        raise CaptureFormatError(self.path, f"not a pcap or pcapng capture (starts with "
                                 f"{buf.bytes_at(0, 8).hex(' ')})", 0)
