"""A SOCKS5 relay on 127.0.0.1 that connects to loopback only: what the demo crawls the built-in
test market through, so the crawl takes the same proxied path as a Tor crawl (``socks5h``, the
name resolved by the proxy) on a machine without Tor or a SOCKS5 server installed.

RFC 1928, CONNECT with "no authentication" only; any other request, and any destination that is
not a loopback address, is refused with the protocol's own reply codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import threading

_SUCCEEDED, _NOT_ALLOWED, _REFUSED, _COMMAND, _ADDRESS_TYPE = 0, 2, 5, 7, 8


class LoopbackSocks5:
    """``with LoopbackSocks5() as proxy: ... proxy.url``: a relay in a thread of its own."""

    def __init__(self) -> None:
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    @property
    def url(self) -> str:
        return f"socks5h://127.0.0.1:{self.port}"

    def __enter__(self) -> LoopbackSocks5:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the loopback SOCKS5 relay did not start")
        return self

    def __exit__(self, *_: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._relay(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        version, n_methods = await reader.readexactly(2)
        methods = await reader.readexactly(n_methods)
        if version != 5 or 0 not in methods:
            writer.write(b"\x05\xff")
            return
        writer.write(b"\x05\x00")
        _, command, _, address_type = await reader.readexactly(4)
        if address_type == 1:
            host = socket.inet_ntoa(await reader.readexactly(4))
        elif address_type == 3:
            host = (await reader.readexactly((await reader.readexactly(1))[0])).decode("idna")
        elif address_type == 4:
            host = socket.inet_ntop(socket.AF_INET6, await reader.readexactly(16))
        else:
            return self._reply(writer, _ADDRESS_TYPE)
        port = int.from_bytes(await reader.readexactly(2), "big")
        if command != 1:
            return self._reply(writer, _COMMAND)
        if not _loopback(host):
            return self._reply(writer, _NOT_ALLOWED)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(host, port)
        except OSError:
            return self._reply(writer, _REFUSED)
        self._reply(writer, _SUCCEEDED)
        try:
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        finally:
            upstream_writer.close()

    @staticmethod
    def _reply(writer: asyncio.StreamWriter, code: int) -> None:
        writer.write(bytes([5, code, 0, 1, 0, 0, 0, 0, 0, 0]))


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(OSError):
        writer.write_eof()
