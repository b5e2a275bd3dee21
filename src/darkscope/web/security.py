"""Headers, request limits, sessions and CSRF for the dashboard.

- **Headers** on every response: a CSP that allows only the app's own scripts, styles and
  images (no inline script, so an injected ``<script>`` would not run even if escaping failed),
  no framing, no sniffing, no referrer; ``Cache-Control: no-store`` (pages hold data);
  HSTS when cookies are marked Secure (behind TLS).
- **Limits**: a request body over ``max_body`` bytes is refused with 413 before it is read
  (a body without Content-Length with 411).
- **Sessions**: an HttpOnly, SameSite=Strict cookie holding a random token (the store keeps its
  hash). **CSRF**: every form carries the session's token and every API write sends it as
  ``X-CSRF-Token``; the login form, before any session, uses a double-submit cookie.
"""

from __future__ import annotations

import hmac
import secrets
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

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


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
    if not same_token(given, session.csrf):
        raise NotAllowed(403, "missing or wrong CSRF token: reload the page and try again")


def new_login_token() -> str:
    return secrets.token_urlsafe(24)
