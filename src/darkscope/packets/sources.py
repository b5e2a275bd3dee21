"""Finding captures (files, directories, globs) and opening them, compressed or not.

Formats are recognised by their magic bytes, never by file name: rotated captures are often
called ``trace.pcap.1`` or ``dump-2016080613``.
"""

from __future__ import annotations

import bz2
import glob
import gzip
import lzma
import re
from pathlib import Path
from typing import BinaryIO

import zstandard

from darkscope.errors import CaptureFormatError, UsageError

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": (False, 1000),     # little-endian, microseconds
    b"\xa1\xb2\xc3\xd4": (True, 1000),      # big-endian, microseconds
    b"\x4d\x3c\xb2\xa1": (False, 1),        # little-endian, nanoseconds
    b"\xa1\xb2\x3c\x4d": (True, 1),         # big-endian, nanoseconds
}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
COMPRESSION_MAGICS = {
    b"\x1f\x8b": "gzip",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"\xfd7zXZ\x00": "xz",
    b"BZh": "bzip2",
}


def compression_of(head: bytes) -> str | None:
    for magic, name in COMPRESSION_MAGICS.items():
        if head.startswith(magic):
            return name
    return None


def is_capture_head(head: bytes) -> bool:
    return head[:4] in PCAP_MAGICS or head[:4] == PCAPNG_MAGIC or compression_of(head) is not None


class CaptureStream:
    """A capture opened for sequential reads; decompresses on the fly.

    ``raw_position()`` is the offset in the file on disk (for progress), while offsets in
    error messages are positions in the (decompressed) capture stream.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._raw: BinaryIO = open(path, "rb", buffering=0)  # noqa: SIM115 - closed in close()
        head = self._raw.read(8)
        self._raw.seek(0)
        self.compression = compression_of(head)
        self._stream: BinaryIO
        if self.compression == "gzip":
            self._stream = gzip.GzipFile(fileobj=self._raw, mode="rb")
        elif self.compression == "zstd":
            self._stream = zstandard.ZstdDecompressor().stream_reader(self._raw)
        elif self.compression == "xz":
            self._stream = lzma.LZMAFile(self._raw, mode="rb")  # noqa: SIM115
        elif self.compression == "bzip2":
            self._stream = bz2.BZ2File(self._raw, mode="rb")
        else:
            self._stream = self._raw

    def readinto(self, view: memoryview) -> int:
        """Fill as much of ``view`` as the stream allows; 0 only at the end."""
        total = 0
        try:
            while total < len(view):
                n = self._stream.readinto(view[total:])
                if not n:
                    break
                total += n
        except (OSError, EOFError, lzma.LZMAError, zstandard.ZstdError) as exc:
            raise CaptureFormatError(
                self.path, f"{self.compression} stream is corrupt or truncated ({exc})") from exc
        return total

    def raw_position(self) -> int:
        return self._raw.tell()

    def fileno(self) -> int:
        return self._raw.fileno()

    def close(self) -> None:
        if self._stream is not self._raw:
            self._stream.close()
        self._raw.close()

    def __enter__(self) -> CaptureStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def natural_key(path: Path) -> list[object]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def _looks_like_capture(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return is_capture_head(handle.read(8))
    except OSError:
        return False


def expand_inputs(inputs: list[str | Path] | str | Path) -> list[Path]:
    """Files, directories (every capture inside, recursively) and glob patterns, in natural
    name order per argument so rotated files (``x.pcap2`` before ``x.pcap10``) keep time order."""
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_file():
            paths.append(path)
        elif path.is_dir():
            found = [p for p in path.rglob("*")
                     if p.is_file() and not any(part.startswith(".") for part in
                                                p.relative_to(path).parts)
                     and _looks_like_capture(p)]
            if not found:
                raise UsageError(f"no capture files in directory {path}")
            paths.extend(sorted(found, key=natural_key))
        elif glob.has_magic(str(item)):
            matches = [Path(m) for m in glob.glob(str(item), recursive=True)]
            matches = [m for m in matches if m.is_file()]
            if not matches:
                raise UsageError(f"no file matches {item}")
            paths.extend(sorted(matches, key=natural_key))
        else:
            raise UsageError(f"no such file or directory: {item}")
    return paths
