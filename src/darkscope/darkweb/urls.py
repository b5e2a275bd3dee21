"""URL canonicalisation and scope rules: one spelling per page, so nothing is fetched twice."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
BINARY_SUFFIXES = frozenset({
    ".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".ico", ".svg", ".tif", ".tiff", ".mp3",
    ".mp4", ".avi", ".mkv", ".mov", ".webm", ".wav", ".zip", ".rar", ".7z", ".gz", ".tgz",
    ".bz2", ".xz", ".tar", ".exe", ".msi", ".dll", ".apk", ".dmg", ".iso", ".bin", ".pdf",
    ".doc", ".docx", ".xls", ".xlsx", ".ppt", ".pptx", ".woff", ".woff2", ".ttf", ".otf", ".css",
    ".js"
})


def canonicalize(url: str, base: str | None = None) -> str | None:
    """The canonical form of ``url`` (resolved against ``base``), or None if not http(s).

    Lower-case scheme and host, default port dropped, fragment dropped, percent-encoding
    normalised as RFC 3986 6.2.2.2 says (only unreserved characters decoded, so ``%2F`` stays
    an escaped slash; other escapes upper-cased; characters not allowed raw encoded), then
    dot-segments resolved, and query parameters sorted as written (``?b`` stays ``?b``).
    Applying it again changes nothing.
    """
    url = url.strip()
    if base is not None:
        url = urljoin(base, url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower().rstrip(".")
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    path = _remove_dot_segments(_normalise_escapes(parts.path or "/", _PATH_SAFE))
    params = sorted((_normalise_escapes(p, _QUERY_SAFE) for p in parts.query.split("&") if p),
                    key=lambda p: p.partition("="))
    return urlunsplit((scheme, netloc, path, "&".join(params), ""))


_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PATH_SAFE = "/:@!$&'()*+,;="
_QUERY_SAFE = "/?:@!$'()*+,;="
_ESCAPE = re.compile(r"(%[0-9A-Fa-f]{2})")


def _normalise_escapes(text: str, safe: str) -> str:
    """Decode escaped unreserved characters, upper-case other escapes, encode the rest."""
    pieces = _ESCAPE.split(text)
    for index, piece in enumerate(pieces):
        if index % 2:
            char = chr(int(piece[1:], 16))
            pieces[index] = char if char in _UNRESERVED else piece.upper()
        else:
            pieces[index] = quote(piece, safe=safe)
    return "".join(pieces)


def _remove_dot_segments(path: str) -> str:
    output: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if len(output) > 1:
                output.pop()
        elif segment != ".":
            output.append(segment)
    joined = "/".join(output)
    return joined if joined.startswith("/") else "/" + joined


def host_of(url: str) -> str:
    """``host[:port]`` of a canonical URL: the unit of politeness and circuit isolation."""
    return urlsplit(url).netloc


def is_onion(url: str) -> bool:
    return (urlsplit(url).hostname or "").endswith(".onion")


def looks_binary(url: str) -> bool:
    """True for URLs whose suffix names a non-text resource (images, archives, executables)."""
    path = urlsplit(url).path.lower()
    dot = path.rfind(".")
    return dot > path.rfind("/") and path[dot:] in BINARY_SUFFIXES


@dataclass
class Scope:
    """Which URLs a crawl may follow: allowed hosts (default: the seeds') and path patterns."""

    hosts: set[str] = field(default_factory=set)
    allow_paths: list[re.Pattern[str]] = field(default_factory=list)
    deny_paths: list[re.Pattern[str]] = field(default_factory=list)

    def allows(self, url: str) -> bool:
        parts = urlsplit(url)
        if self.hosts and parts.netloc not in self.hosts:
            return False
        target = parts.path + ("?" + parts.query if parts.query else "")
        if any(p.search(target) for p in self.deny_paths):
            return False
        return not self.allow_paths or any(p.search(target) for p in self.allow_paths)
