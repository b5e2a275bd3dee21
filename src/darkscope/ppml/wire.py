"""The one binary container every ppml message uses: a JSON header, then checksummed chunks.

Layout: ``MAGIC``, a 4-byte big-endian header length, the UTF-8 JSON header, then the chunks
back to back. The header lists each chunk's length and SHA-256, so truncation and corruption in
transit or on disk are caught with a message saying which chunk, before any ciphertext is used.
(A digest does not stop a malicious sender, who can recompute it; see docs/ppml.md.)
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from typing import Any

from darkscope.errors import DarkscopeError

MAGIC = b"DSPPML1\n"
_MAX_HEADER = 16 << 20


class WireFormatError(DarkscopeError):
    """A message that is truncated, corrupted or not a ppml container at all."""


@dataclass
class Message:
    header: dict[str, Any]
    chunks: list[bytes] = field(default_factory=list)

    def encode(self) -> bytes:
        header = dict(self.header)
        header["chunks"] = [{"length": len(c), "sha256": hashlib.sha256(c).hexdigest()}
                            for c in self.chunks]
        raw = json.dumps(header, sort_keys=True).encode()
        return b"".join([MAGIC, struct.pack(">I", len(raw)), raw, *self.chunks])


def decode(data: bytes, what: str = "message") -> Message:
    """Parse and verify a container; every defect is a :class:`WireFormatError` naming it."""
    if not data.startswith(MAGIC):
        raise WireFormatError(f"{what}: not a darkscope ppml container (bad magic)")
    start = len(MAGIC) + 4
    if len(data) < start:
        raise WireFormatError(f"{what}: truncated before the header length")
    (size,) = struct.unpack(">I", data[len(MAGIC):start])
    if size > _MAX_HEADER or len(data) < start + size:
        raise WireFormatError(f"{what}: truncated inside the header ({len(data)} bytes)")
    try:
        header = json.loads(data[start:start + size])
        specs = header.pop("chunks")
        lengths = [int(s["length"]) for s in specs]
        digests = [str(s["sha256"]) for s in specs]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise WireFormatError(f"{what}: unreadable header ({exc})") from exc
    offset = start + size
    expected = offset + sum(lengths)
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "has trailing bytes"
        raise WireFormatError(f"{what}: {state}: header announces {expected} bytes in "
                              f"{len(lengths)} chunks, got {len(data)}")
    chunks = []
    for index, (length, digest) in enumerate(zip(lengths, digests, strict=True)):
        chunk = data[offset:offset + length]
        if hashlib.sha256(chunk).hexdigest() != digest:
            raise WireFormatError(f"{what}: chunk {index} (bytes {offset}-{offset + length}) "
                                  "fails its SHA-256 check: tampered or corrupted")
        chunks.append(chunk)
        offset += length
    return Message(header, chunks)
