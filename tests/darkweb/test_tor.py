"""End to end through a real (private) Tor network: the test market as a v3 onion service."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator

import aiohttp
import pytest

from darkscope.cli import main
from darkscope.darkweb.connection import Connection, ProxyConfig, ProxyUnavailable
from darkscope.darkweb.fetcher import Limits, TransientError, fetch
from darkscope.darkweb.testmarket import SESSION_COOKIE, Market, MarketServer
from darkscope.darkweb.torcontrol import TorControl

from .conftest import comparable, read_jsonl
from .tornet import PrivateTorNetwork, free_port, tor_available

pytestmark = [pytest.mark.slow, pytest.mark.network]
READY_TIMEOUT = 300  # MEASURED.md: 32-66 s here, ~100 s under load


async def _login_page(socks_port: int, onion: str) -> int:
    connection = Connection(ProxyConfig.parse(f"socks5h://127.0.0.1:{socks_port}"))
    try:
        session = connection.session(onion, aiohttp.CookieJar(unsafe=True))
        response = await fetch(session, f"http://{onion}/login", Limits(timeout=30))
        return response.status
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def tor_market(tmp_path_factory) -> Iterator[tuple[PrivateTorNetwork, MarketServer]]:
    """Three authorities, two relays, a client and an onion service serving the test market,
    all tor processes on 127.0.0.1; torn down after the session."""
    if not tor_available():
        pytest.skip("Debian's tor and tor-gencert are not installed (apt-get install tor)")
    with MarketServer(Market.generate(seed=5, per_category=6, slow_seconds=0.3)) as server:
        network = PrivateTorNetwork(tmp_path_factory.mktemp("tornet"), server.port)
        try:
            network.start()
            deadline = time.monotonic() + READY_TIMEOUT
            while True:
                try:
                    if asyncio.run(_login_page(network.socks_port, network.onion_address)) == 200:
                        break
                except TransientError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"private Tor network not ready after {READY_TIMEOUT} s:\n"
                                f"{network.logs()}")
                network._check_alive()
                time.sleep(2)
            yield network, server
        finally:
            network.stop()


def test_crawl_onion_market_through_private_tor(tor_market, tmp_path):
    network, server = tor_market
    onion = network.onion_address
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n"
                       f"{onion}\tFALSE\t/\tFALSE\t0\t{SESSION_COOKIE}\t{server.market.token}\n")
    out = tmp_path / "crawl"
    code = main(["crawl", f"http://{onion}/",
                 "--proxy", f"socks5h://127.0.0.1:{network.socks_port}",
                 "--control", f"127.0.0.1:{network.control_port}",
                 "--control-password", network.control_password, "--market", "testmarket",
                 "--cookies", str(cookies), "-o", str(out), "--timeout", "60",
                 "--concurrency", "8", "--no-progress"])
    assert code == 0
    assert comparable(read_jsonl(out / "listings.jsonl")) == server.market.truth(f"http://{onion}")
    db = sqlite3.connect(out / "state.sqlite")
    assert db.execute("SELECT count(*) FROM urls WHERE state='pending'").fetchone()[0] == 0


def test_control_port_health_and_new_circuits(tor_market):
    network, _ = tor_market
    control = TorControl(f"127.0.0.1:{network.control_port}", network.control_password)
    try:
        control.check_health()
        assert control.bootstrap_progress()[0] == 100
        assert isinstance(control.new_identity(), bool)
    finally:
        control.close()
    with pytest.raises(ProxyUnavailable, match="authentication failed"):
        TorControl(f"127.0.0.1:{network.control_port}", "wrong password")


def test_tor_down_gives_a_clear_message(tmp_path, capsys):
    closed = free_port()
    with pytest.raises(ProxyUnavailable, match="no Tor control port"):
        TorControl(f"127.0.0.1:{closed}")
    code = main(["crawl", "http://x.onion/", "--proxy", f"socks5h://127.0.0.1:{closed}",
                 "-o", str(tmp_path / "c"), "--no-progress"])
    assert code == 1
    assert "cannot reach the SOCKS proxy" in capsys.readouterr().err
