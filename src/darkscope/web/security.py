"""Headers, request limits, sessions and CSRF for the dashboard.

- **Headers** on every response: a CSP that allows only the app's own scripts, styles and
  images (no inline script, so an injected ``<script>`` would not run even if escaping failed),
  no framing, no sniffing, no referrer; ``Cache-Control: no-store`` (pages hold data);
  HSTS when cookies are marked Secure (behind TLS).
- **Limits**: a request body over ``max_body`` bytes is refused with 413 before it is read
  (a body without Content-Length with 411).
- **Sessions**: an HttpOnly, SameSite=Strict cookie holding a random token (the store keeps its
  hash). **CSRF**: every form carries the session's token and every API write sends it as
  ``X-CSRF-Token``; the login form, before any session, uses a double-submit cookie. An API
  token (``Authorization: Bearer``) needs none: browsers never send it by themselves.
- **Login attempts** are limited per user name and per client address (``LoginLimiter``), so
  guessing passwords online is slow, and a locked name costs no password hashing.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from darkscope.store.users import Session

SESSION_COOKIE = "ds_session"
LOGIN_COOKIE = "ds_login"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class NotAllowed(Exception):
    """Raised by route guards: 401 (log in) or 403 (role too low, bad CSRF token)."""

    def __init__(self, status: int, detail: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


class Hardening:
    """ASGI middleware: security headers on every response, bounded request bodies."""

    def __init__(self, app: ASGIApp, max_body: int, hsts: bool) -> None:
        self.app = app
        self.max_body = max_body
        self.headers = [(b"content-security-policy", CSP.encode()),
                        (b"x-content-type-options", b"nosniff"),
                        (b"x-frame-options", b"DENY"),
                        (b"referrer-policy", b"no-referrer"),
                        (b"cross-origin-opener-policy", b"same-origin"),
                        (b"permissions-policy", b"camera=(), microphone=(), geolocation=()")]
        if hsts:
            self.headers.append((b"strict-transport-security", b"max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is None and scope["method"] in ("POST", "PUT", "PATCH"):
            # the server enforces Content-Length framing, so a declared length bounds the body
            await _plain(send, 411, b"Content-Length required", self.headers)
            return
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await _plain(send, 413, b"request body too large", self.headers)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers += [h for h in self.headers if h[0] not in names]
                if not scope["path"].startswith("/static/"):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


async def _plain(send: Send, status: int, body: bytes,
                 headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), *headers]})
    await send({"type": "http.response.body", "body": body})


def same_token(given: str | None, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(str(given), expected)


def check_csrf(session: Session, given: str | None) -> None:
    if session.token_id is not None:
        return  # a bearer token is not ambient authority: no cross-site request carries it
    if not same_token(given, session.csrf):
        raise NotAllowed(403, "missing or wrong CSRF token: reload the page and try again")


def new_login_token() -> str:
    return secrets.token_urlsafe(24)


class LoginLimiter:
    """Failed logins in a sliding window, per user name and per client address.

    After ``per_name`` failures for one name (or ``per_client`` from one address) within
    ``window_s``, further attempts are refused until the oldest failure leaves the window; a
    success clears that name's failures. Kept in memory: a restart forgets, which costs an
    attacker a restart they cannot cause. Behind a reverse proxy the client address is the one
    it forwards (uvicorn trusts ``X-Forwarded-For`` from ``--forwarded-allow-ips``).
    """

    MAX_KEYS = 100_000   # bounded memory under a flood of distinct names

    def __init__(self, per_name: int = 5, per_client: int = 20, window_s: float = 900.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_name = per_name
        self.per_client = per_client
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait_s(self, name: str, client: str) -> int:
        """Seconds until ``name`` may try again from ``client``; 0 when it may now."""
        with self._lock:
            now = self._clock()
            waits = [self._wait(f"name:{name.lower()}", self.per_name, now),
                     self._wait(f"client:{client}", self.per_client, now)]
        return max(waits)

    def _wait(self, key: str, limit: int, now: float) -> int:
        times = self._failures.get(key)
        if times is None:
            return 0
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return 0
        return 0 if len(times) < limit else int(times[0] + self.window_s - now) + 1

    def failed(self, name: str, client: str) -> None:
        with self._lock:
            if len(self._failures) >= self.MAX_KEYS:
                self._forget_oldest()
            now = self._clock()
            for key in (f"name:{name.lower()}", f"client:{client}"):
                self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(f"name:{name.lower()}", None)

    def _forget_oldest(self) -> None:
        oldest = sorted(self._failures, key=lambda k: self._failures[k][-1])
        for key in oldest[:len(oldest) // 10 or 1]:
            del self._failures[key]
