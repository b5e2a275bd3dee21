"""The connection part: every request leaves through the Tor (or SOCKS5h) proxy, or not at all.

Names are always resolved by the proxy (``socks5h``), so an ``.onion`` name or a clearnet name
never reaches a local resolver. Each site gets its own HTTP session whose SOCKS credentials
name the site, so a Tor client with ``IsolateSOCKSAuth`` (its default) puts every site on its own
circuits; a new credential epoch for a site gives it fresh circuits after repeated failures.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import aiohttp
from aiohttp_socks import ProxyConnector, ProxyType

from darkscope.darkweb.urls import is_onion
from darkscope.errors import DarkscopeError, UsageError


class ProxyLeakRefused(DarkscopeError):
    """A request that would bypass the proxy (or resolve a name locally) was refused."""


class ProxyUnavailable(DarkscopeError):
    """The SOCKS proxy or the Tor control port cannot be used; the message says why."""


@dataclass(frozen=True)
class ProxyConfig:
    """Where the SOCKS5h proxy listens; ``None`` host means direct connections (clearnet only)."""

    host: str | None
    port: int = 0
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str | None) -> ProxyConfig:
        """Parse ``socks5h://[user:pass@]host:port``; ``None`` means direct (clearnet only)."""
        if url is None:
            return cls(None)
        parts = urlsplit(url)
        if parts.scheme != "socks5h":
            raise UsageError(
                f"proxy {url!r}: only socks5h:// is accepted, so that names are resolved by the "
                "proxy and never locally (e.g. socks5h://127.0.0.1:9050)")
        try:
            port = parts.port
        except ValueError as exc:
            raise UsageError(f"proxy {url!r}: {exc}") from None
        if not parts.hostname or port is None:
            raise UsageError(f"proxy {url!r}: give host and port, e.g. socks5h://127.0.0.1:9050")
        return cls(parts.hostname, port,
                   unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None)

    @property
    def direct(self) -> bool:
        return self.host is None

    def __str__(self) -> str:
        return "direct" if self.direct else f"socks5h://{self.host}:{self.port}"


@dataclass
class Connection:
    """HTTP sessions per site, all through one proxy; refuses anything that would leak."""

    proxy: ProxyConfig
    isolate_sites: bool = True
    per_site_connections: int = 8
    user_agent: str | None = None
    _sessions: dict[str, aiohttp.ClientSession] = field(default_factory=dict)
    _epochs: dict[str, int] = field(default_factory=dict)
    _token: str = field(default_factory=lambda: secrets.token_hex(8))
    _users: dict[aiohttp.ClientSession, int] = field(default_factory=dict)
    _retired: set[aiohttp.ClientSession] = field(default_factory=set)

    def check(self, url: str) -> None:
        """Raise :class:`ProxyLeakRefused` for a request that could not stay inside the proxy."""
        scheme = urlsplit(url).scheme
        if scheme not in ("http", "https"):
            raise ProxyLeakRefused(f"{url}: only http(s) is fetched, not {scheme!r}")
        if self.proxy.direct and is_onion(url):
            raise ProxyLeakRefused(
                f"{url}: an .onion address needs the Tor proxy (--proxy socks5h://HOST:PORT); "
                "refusing to resolve it locally")

    def socks_credentials(self, site: str) -> tuple[str | None, str | None]:
        """SOCKS user/password for ``site``: distinct per site and circuit epoch, which Tor's
        ``IsolateSOCKSAuth`` turns into separate circuits (a user in the proxy URL wins)."""
        if self.proxy.username is not None or not self.isolate_sites:
            return self.proxy.username, self.proxy.password
        return f"darkscope-{site}", f"{self._token}-{self._epochs.get(site, 0)}"

    def session(self, site: str, cookie_jar: aiohttp.abc.AbstractCookieJar) -> (
            aiohttp.ClientSession):
        """The session for ``site`` (``host[:port]``), created on first use."""
        existing = self._sessions.get(site)
        if existing is not None and not existing.closed:
            return existing
        connector: aiohttp.BaseConnector
        if self.proxy.direct:
            connector = aiohttp.TCPConnector(limit_per_host=self.per_site_connections)
        else:
            username, password = self.socks_credentials(site)
            connector = ProxyConnector(
                proxy_type=ProxyType.SOCKS5, host=self.proxy.host, port=self.proxy.port,
                username=username, password=password, rdns=True,
                limit_per_host=self.per_site_connections)
        headers = {"User-Agent": self.user_agent} if self.user_agent else None
        session = aiohttp.ClientSession(connector=connector, cookie_jar=cookie_jar,
                                        auto_decompress=True, trust_env=False, headers=headers)
        self._sessions[site] = session
        return session

    @contextlib.asynccontextmanager
    async def using(self, site: str, cookie_jar: aiohttp.abc.AbstractCookieJar,
                    ) -> AsyncIterator[aiohttp.ClientSession]:
        """The session for ``site``, counted as in use until the block ends, so that a new
        circuit for the site closes the old session only after its requests are done."""
        session = self.session(site, cookie_jar)
        self._users[session] = self._users.get(session, 0) + 1
        try:
            yield session
        finally:
            self._users[session] -= 1
            if not self._users[session]:
                del self._users[session]
                if session in self._retired:
                    self._retired.discard(session)
                    await session.close()

    async def new_circuit(self, site: str) -> None:
        """Fresh circuits for ``site``: new SOCKS credentials, so Tor isolates it anew.

        Requests still running on the old session finish on it; it is closed after the last.
        """
        self._epochs[site] = self._epochs.get(site, 0) + 1
        old = self._sessions.pop(site, None)
        if old is None:
            return
        if self._users.get(old):
            self._retired.add(old)
        else:
            await old.close()

    async def close(self) -> None:
        sessions = [*self._sessions.values(), *self._retired]
        self._sessions, self._retired = {}, set()
        await asyncio.gather(*(s.close() for s in sessions))

    async def probe(self, timeout: float = 10.0) -> None:
        """Fail early with a clear message when the SOCKS proxy does not answer."""
        if self.proxy.direct:
            return
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(self.proxy.host, self.proxy.port), timeout)
        except (OSError, TimeoutError) as exc:
            raise ProxyUnavailable(
                f"cannot reach the SOCKS proxy at {self.proxy}: {exc or 'timed out'} "
                "(is Tor running?)") from None
        writer.close()
        await writer.wait_closed()
