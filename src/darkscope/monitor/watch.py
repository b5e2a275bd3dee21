"""A directory of rotating captures as one stream of packets: every packet once.

Files are taken in natural name order (``x.pcap2`` before ``x.pcap10``; ``tcpdump -G``'s
strftime names sort by time), hidden files and non-captures ignored. A plain capture is read
as it grows (:class:`~darkscope.packets.follow.CaptureFollower`); a compressed one only once
it is finished (a later capture exists, or it has not changed for ``settle_s``), since a
compressor's unfinished output cannot be decoded. A file is known by its inode, so a rename
(logrotate) continues where it was; and by the hash of its first bytes, so a rotated capture
that reappears compressed (``x.pcap`` -> ``x.pcap.1.gz``) or copied (copytruncate) is read
only past what its original already gave. A file that shrank (truncated in place) starts over.
A compressed capture that turns out corrupt is read up to the damage and reported.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa

from darkscope.errors import CaptureFormatError, UsageError
from darkscope.packets.follow import CaptureFollower, FollowPosition
from darkscope.packets.sources import CaptureStream, compression_of, is_capture_head, natural_key

FINGERPRINT_BYTES = 4096
FORGET_AFTER = 1000  # fingerprints of vanished files kept for rotation matching


@dataclass
class TrackedFile:
    path: str
    inode: str                 # "device:inode"
    fingerprint: str           # sha256 of the first ``fingerprint_len`` capture bytes
    fingerprint_len: int
    offset: int = 0
    header: str = ""           # base64 of the header blocks (FollowPosition.header)
    size: int = 0              # file size at the last read
    done: bool = False         # a finished compressed capture, read to its end
    gone: bool = False

    @property
    def position(self) -> FollowPosition:
        return FollowPosition(self.offset, base64.b64decode(self.header))


def _capture_prefix(path: Path, length: int) -> bytes:
    with CaptureStream(path) as stream:
        data = bytearray(length)
        got = stream.readinto(memoryview(data))
    return bytes(data[:got])


class DirectoryWatcher:
    """Poll ``root`` for captures and return what they gained since the last poll."""

    def __init__(self, root: str | Path, state: list[dict] | None = None, *,
                 settle_s: float = 30.0, max_bytes: int = 1 << 26) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise UsageError(f"--watch {self.root}: not a directory")
        self.settle_s = settle_s
        self.max_bytes = max_bytes
        self.files: dict[str, TrackedFile] = {}
        for entry in state or []:
            tracked = TrackedFile(**entry)
            self.files[tracked.inode] = tracked
        self.problems: list[CaptureFormatError] = []
        self.skipped_records = 0
        self._rejected: dict[str, int] = {}  # inode -> size when found not to be a capture

    live = False

    def state(self) -> list[dict]:
        return [asdict(f) for f in self.files.values()]

    def file_count(self) -> int:
        return sum(not f.gone for f in self.files.values())

    def drops(self) -> dict[str, int | None]:
        return {"kernel": None, "own": 0}  # files are read at their own pace: nothing drops

    def close(self) -> None:
        """Nothing is held open between polls."""

    def _candidates(self) -> list[tuple[Path, os.stat_result]]:
        found = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in filenames:
                if name.startswith("."):
                    continue
                path = Path(dirpath) / name
                try:
                    info = path.stat()
                except FileNotFoundError:
                    continue
                found.append((path, info))
        return sorted(found, key=lambda item: natural_key(item[0]))

    def _track(self, path: Path, info: os.stat_result) -> TrackedFile | None:
        inode = f"{info.st_dev}:{info.st_ino}"
        known = self.files.get(inode)
        if known is not None:
            known.path, known.gone = str(path), False
            if info.st_size < known.size:  # truncated in place (copytruncate): a new capture
                # The old capture's position stays known, for its copy to resume from.
                self.files[f"{inode}@{known.offset}"] = TrackedFile(
                    **{**asdict(known), "inode": f"{inode}@{known.offset}", "gone": True})
                known = self.files[inode] = TrackedFile(str(path), inode, "", 0)
            return known
        if self._rejected.get(inode) == info.st_size or info.st_size < 24:
            return None
        try:
            with path.open("rb") as handle:
                head = handle.read(8)
        except OSError:
            return None
        if not is_capture_head(head):
            self._rejected[inode] = info.st_size
            return None
        tracked = TrackedFile(str(path), inode, "", 0)
        self.files[inode] = tracked
        return tracked

    def _fingerprint(self, tracked: TrackedFile) -> None:
        """Hash the first bytes once there are enough; inherit a matching file's position."""
        if tracked.fingerprint_len >= FINGERPRINT_BYTES:
            return
        try:
            prefix = _capture_prefix(Path(tracked.path), FINGERPRINT_BYTES)
        except CaptureFormatError:
            return  # an unfinished compressed stream: wait
        if len(prefix) < FINGERPRINT_BYTES:
            return  # too short to be told apart yet
        tracked.fingerprint = hashlib.sha256(prefix).hexdigest()
        tracked.fingerprint_len = len(prefix)
        for other in self.files.values():
            if other is not tracked and other.fingerprint == tracked.fingerprint \
                    and other.offset > tracked.offset:
                tracked.offset, tracked.header = other.offset, other.header

    def _ready(self, tracked: TrackedFile, info: os.stat_result) -> bool:
        """Plain captures are read as they grow; compressed ones once unchanged for
        ``settle_s`` (a compressor writes them progressively, and a rotated capture's
        compressed copy may appear while the next capture is already being written)."""
        with Path(tracked.path).open("rb") as handle:
            compressed = compression_of(handle.read(8)) is not None
        return not compressed or time.time() - info.st_mtime >= self.settle_s

    def _check_finished(self, tracked: TrackedFile, info: os.stat_result, newer: bool) -> None:
        """A rotated capture left with a cut-off last record: say so once, then stop."""
        settled = time.time() - info.st_mtime >= self.settle_s
        if newer and settled and tracked.offset and tracked.offset < info.st_size:
            with Path(tracked.path).open("rb") as handle:
                if compression_of(handle.read(8)) is not None:
                    return
            self.problems.append(CaptureFormatError(
                tracked.path, f"file ends inside a record ({info.st_size - tracked.offset} "
                "bytes left unread; a newer capture exists)", tracked.offset))
            tracked.done = True

    def poll(self) -> Iterator[tuple[TrackedFile, list[pa.RecordBatch]]]:
        """(file, new batches) for every capture that gained complete records, in order.

        Reads stop at ``max_bytes`` per file and poll; call again until a poll yields nothing.
        """
        candidates = self._candidates()
        seen = set()
        for index, (path, info) in enumerate(candidates):
            tracked = self._track(path, info)
            if tracked is None:
                continue
            seen.add(tracked.inode)
            newer = index < len(candidates) - 1
            if tracked.done:
                continue
            if info.st_size == tracked.size:
                self._check_finished(tracked, info, newer)
                continue
            self._fingerprint(tracked)
            if not self._ready(tracked, info):
                continue
            follower = CaptureFollower(path, tracked.position, max_bytes=self.max_bytes)
            batches = follower.read()
            tracked.offset = follower.position.offset
            tracked.header = base64.b64encode(follower.position.header).decode()
            if follower.failed:
                tracked.done = True  # a corrupt compressed stream: what decoded is kept
            elif follower.caught_up:
                tracked.size = info.st_size
                with path.open("rb") as handle:
                    tracked.done = compression_of(handle.read(8)) is not None
            self.problems.extend(follower.report.problems)
            self.skipped_records += follower.report.skipped_records
            if batches:
                yield tracked, batches
        self._forget(seen)

    def _forget(self, seen: set[str]) -> None:
        for inode, tracked in list(self.files.items()):
            if inode not in seen:
                tracked.gone = True
        gone = [i for i, f in self.files.items() if f.gone]
        for inode in gone[:-FORGET_AFTER] if len(gone) > FORGET_AFTER else []:
            del self.files[inode]
