"""The fetching part: one HTTP exchange under the crawl's limits, text only.

Redirects are not followed here: a 3xx comes back as a response with its ``Location`` so the
crawler can count hops, detect loops and keep every hop in the archive.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from aiohttp_socks import ProxyConnectionError, ProxyError, ProxyTimeoutError

from darkscope.darkweb.archive import Response, utc_now

TEXT_TYPES = frozenset({"text/html", "application/xhtml+xml", "text/plain", "application/json",
                        "application/xml", "text/xml", ""})
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
RETRY_CODES = frozenset({408, 425, 429, 500, 502, 503, 504})


def is_text(content_type: str) -> bool:
    return content_type in TEXT_TYPES or content_type.startswith("text/")


@dataclass(frozen=True)
class Limits:
    timeout: float = 60.0
    connect_timeout: float = 30.0
    max_bytes: int = 2_000_000


class TransientError(Exception):
    """A failure worth retrying (timeouts, refused circuits, 5xx); ``response`` holds the
    server's answer when there was one (it is archived if no retry follows)."""

    def __init__(self, message: str, response: Response | None = None) -> None:
        super().__init__(message)
        self.response = response


class NotText(Exception):
    """The server announced a non-text body (image, archive, binary); it was not downloaded.
    ``response`` holds the status and headers with an empty body, marked truncated."""

    def __init__(self, content_type: str, response: Response) -> None:
        super().__init__(content_type)
        self.response = response


async def fetch(session: aiohttp.ClientSession, url: str, limits: Limits) -> Response:
    """GET ``url``; the body is cut at ``limits.max_bytes`` and marked truncated."""
    timeout = aiohttp.ClientTimeout(total=limits.timeout, sock_connect=limits.connect_timeout)
    try:
        async with session.get(url, allow_redirects=False, timeout=timeout,
                               headers={"Accept": "text/html,application/xhtml+xml,text/*;q=0.9"}
                               ) as resp:
            headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.raw_headers]
            content_type = (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if resp.status not in REDIRECT_CODES and not is_text(content_type):
                raise NotText(content_type, Response(
                    url=url, status=resp.status, reason=resp.reason or "", headers=headers,
                    body=b"", date=utc_now(), truncated=True))
            body = bytearray()
            truncated = False
            async for chunk in resp.content.iter_chunked(65536):
                body += chunk
                if len(body) > limits.max_bytes:
                    del body[limits.max_bytes:]
                    truncated = True
                    break
            response = Response(
                url=url, status=resp.status, reason=resp.reason or "", headers=headers,
                body=bytes(body), date=utc_now(), truncated=truncated)
    except TimeoutError as exc:
        raise TransientError(f"timed out after {limits.timeout:g} s") from exc
    except ProxyTimeoutError as exc:  # not a TimeoutError nor a ProxyError subclass
        raise TransientError(f"SOCKS proxy timed out: {exc}") from exc
    except (aiohttp.ClientError, ProxyError, ProxyConnectionError, OSError) as exc:
        raise TransientError(f"{type(exc).__name__}: {exc}") from exc
    if response.status in RETRY_CODES:
        raise TransientError(f"HTTP {response.status}", response)
    return response
