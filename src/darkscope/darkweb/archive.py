"""WARC archive of every response (warcio), and replay of what a killed crawl left behind.

One gzip member per record, so a record cut short by ``kill -9`` is detected and dropped, and
every complete record after the last committed offset can be replayed into the frontier.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from io import BytesIO
from pathlib import Path

from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

# Headers that describe the transfer rather than the body we store (decoded, de-chunked).
_TRANSFER_HEADERS = frozenset({"content-encoding", "transfer-encoding", "content-length"})


@dataclass
class Response:
    """One HTTP response as archived: decoded body (possibly cut at the size limit)."""

    url: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    date: str
    truncated: bool = False

    @cached_property
    def sha256(self) -> str:
        """Hex SHA-256 of the body, computed once: every listing of a page carries it."""
        return hashlib.sha256(self.body).hexdigest()

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    @property
    def content_type(self) -> str:
        return (self.header("content-type") or "").split(";")[0].strip().lower()

    @property
    def charset(self) -> str | None:
        for part in (self.header("content-type") or "").split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                return value.strip('"\'')
        return None


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class WarcArchive:
    """Appends responses to one ``.warc.gz`` file; returns each record's offsets."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file = open(self.path, "ab")  # noqa: SIM115 (kept open for the crawl)
        self._writer = WARCWriter(self._file, gzip=True)

    def write(self, response: Response) -> tuple[int, int]:
        """Append ``response``; return ``(offset, end)``. Flushed: it survives ``kill -9``."""
        headers = [(k, v) for k, v in response.headers if k.lower() not in _TRANSFER_HEADERS]
        headers.append(("Content-Length", str(len(response.body))))
        http_headers = StatusAndHeaders(f"{response.status} {response.reason}", headers,
                                        protocol="HTTP/1.1")
        warc_headers = {"WARC-Date": response.date}
        if response.truncated:
            warc_headers["WARC-Truncated"] = "length"
        record = self._writer.create_warc_record(
            response.url, "response", payload=BytesIO(response.body),
            http_headers=http_headers, warc_headers_dict=warc_headers)
        offset = self._file.tell()
        self._writer.write_record(record)
        self._file.flush()
        return offset, self._file.tell()

    def close(self) -> None:
        self._file.close()


def read_responses(path: str | Path, start: int = 0, verify: bool = True,
                   ) -> Iterator[tuple[Response, int, int]]:
    """``(response, offset, end)`` for each complete response record from byte ``start``.

    Stops quietly at the first record that is cut short (what ``kill -9`` leaves at the end):
    each record is its own gzip member, and with ``verify`` a member without its end counts as
    incomplete (records before a committed offset need no such check).
    """
    with open(path, "rb") as stream:
        stream.seek(start)
        iterator = ArchiveIterator(stream)
        try:
            for record in iterator:
                body = record.content_stream().read()
                iterator.read_to_end(record)
                offset = iterator.get_record_offset()
                end = offset + iterator.get_record_length()
                if verify and not _complete_member(path, offset, end):
                    return
                if record.rec_type != "response":
                    continue
                http = record.http_headers
                yield Response(
                    url=record.rec_headers.get_header("WARC-Target-URI"),
                    status=int(http.get_statuscode() or 0),
                    reason=http.statusline.partition(" ")[2], headers=list(http.headers),
                    body=body, date=record.rec_headers.get_header("WARC-Date"),
                    truncated=record.rec_headers.get_header("WARC-Truncated") is not None,
                ), offset, end
        except (ArchiveLoadFailed, EOFError, OSError, ValueError, zlib.error):
            return


def _complete_member(path: str | Path, offset: int, end: int) -> bool:
    """Whether bytes ``[offset, end)`` hold one whole gzip member (trailer included)."""
    with open(path, "rb") as stream:
        stream.seek(offset)
        raw = stream.read(end - offset)
    inflater = zlib.decompressobj(wbits=31)
    try:
        inflater.decompress(raw)
    except zlib.error:
        return False
    return inflater.eof
