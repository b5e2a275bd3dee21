"""Real components on loopback: the test market, a microsocks SOCKS5 proxy, a private Tor net."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from darkscope.darkweb.testmarket import SESSION_COOKIE, Market, MarketServer

from .tornet import free_port


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@pytest.fixture(scope="session")
def socks_port() -> Iterator[int]:
    """A real SOCKS5 server (Debian's microsocks) on loopback, resolving names itself."""
    if shutil.which("microsocks") is None:
        pytest.skip("microsocks is not installed (apt-get install microsocks, .ci/apt-packages)")
    port = free_port()
    process = subprocess.Popen(["microsocks", "-i", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield port
    finally:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture
def market() -> Iterator[MarketServer]:
    with MarketServer(Market.generate(seed=3, slow_seconds=0.3)) as server:
        yield server


def write_cookies(path: Path, server: MarketServer, fmt: str = "netscape") -> Path:
    """The login a person would export from Tor Browser after solving the CAPTCHA."""
    if fmt == "json":
        path.write_text(json.dumps([{"name": SESSION_COOKIE, "value": server.market.token,
                                     "domain": server.host, "path": "/", "hostOnly": True}]))
    else:
        path.write_text("# Netscape HTTP Cookie File\n"
                        f"{server.host}\tFALSE\t/\tFALSE\t0\t{SESSION_COOKIE}\t"
                        f"{server.market.token}\n")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def comparable(listings: list[dict]) -> list[dict]:
    """Listing fields that must equal the market's own data (crawl metadata dropped)."""
    return [{k: v for k, v in row.items() if k not in ("crawled_at", "page_sha256")}
            for row in listings]
