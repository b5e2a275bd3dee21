"""A network interface as the monitor's packet source (``--interface``)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pyarrow as pa

from darkscope.errors import CaptureFormatError
from darkscope.packets.live import LiveCapture

# Frames reach user space when their ring block fills or ``block_timeout_ms`` (100 ms) passes:
# a read started at time t has every frame that arrived before t - 100 ms. The clock is set
# this far behind the start of the last read, so no frame is later than its interval's close
# however long the judging after the read takes.
CLOCK_DELAY_NS = 1_000_000_000


class InterfaceSource:
    """Blocks of frames from :class:`~darkscope.packets.live.LiveCapture`, one poll at a time."""

    live = True

    def __init__(self, interface: str, bpf_filter: str | None, poll_s: float) -> None:
        self.capture = LiveCapture(interface, bpf_filter=bpf_filter)
        self.poll_s = poll_s
        self.read_started_ns = time.time_ns()

    @property
    def problems(self) -> list[CaptureFormatError]:
        return self.capture.report.problems

    @property
    def skipped_records(self) -> int:
        return self.capture.report.skipped_records

    def poll(self) -> Iterator[tuple[None, list[pa.RecordBatch]]]:
        self.read_started_ns = time.time_ns()
        batches = self.capture.read(timeout_s=self.poll_s)
        if batches:
            yield None, batches

    def state(self) -> list[dict]:
        return []

    def file_count(self) -> int:
        return 0

    def drops(self) -> dict[str, int | None]:
        return {"kernel": self.capture.kernel_drops, "own": 0,
                "kernel_seen": self.capture.kernel_packets}

    def close(self) -> None:
        self.capture.close()
