"""End to end through a real (private) Tor network: the test market as a v3 onion service."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator

import aiohttp
import pytest
from stem.control import Controller

from darkscope.cli import main
from darkscope.darkweb.connection import Connection, ProxyConfig, ProxyUnavailable
from darkscope.darkweb.fetcher import Limits, TransientError, fetch
from darkscope.darkweb.testmarket import SESSION_COOKIE, Market, MarketServer
from darkscope.darkweb.torcontrol import TorControl

from .conftest import comparable, read_jsonl
from .tornet import PrivateTorNetwork, free_port, tor_available

pytestmark = [pytest.mark.slow, pytest.mark.network]
READY_TIMEOUT = 300  # MEASURED.md: 32-66 s here, ~100 s under load


# A new circuit to an onion service (rendezvous) can take longer than the crawler's default
# 30 s connect timeout on a loaded machine; the crawler retries, and so do these direct fetches.
PATIENT = Limits(timeout=120, connect_timeout=90)


async def _fetch_patiently(session: aiohttp.ClientSession, url: str, attempts: int = 3):
    for _ in range(attempts - 1):
        try:
            return await fetch(session, url, PATIENT)
        except TransientError:
            await asyncio.sleep(2)
    return await fetch(session, url, PATIENT)


async def _login_page(socks_port: int, onion: str) -> int:
    connection = Connection(ProxyConfig.parse(f"socks5h://127.0.0.1:{socks_port}"))
    try:
        session = connection.session(onion, aiohttp.CookieJar(unsafe=True))
        response = await fetch(session, f"http://{onion}/login", Limits(timeout=30))
        return response.status
    finally:
        await connection.close()


def _start_network(workdir, service_port: int) -> PrivateTorNetwork:
    """Start the network and wait until the onion service answers through the client."""
    network = PrivateTorNetwork(workdir, service_port)
    try:
        network.start()
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                if asyncio.run(_login_page(network.socks_port, network.onion_address)) == 200:
                    return network
            except TransientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready after {READY_TIMEOUT} s:\n{network.logs()}")
            network.check_alive()
            time.sleep(2)
    except BaseException:
        network.stop()
        raise


@pytest.fixture(scope="session")
def tor_market(tmp_path_factory) -> Iterator[tuple[PrivateTorNetwork, MarketServer]]:
    """Three authorities, two relays, a client and an onion service serving the test market,
    all tor processes on 127.0.0.1; torn down after the session. A start that fails (say a
    port taken between choosing and binding it) is tried once more with fresh ports."""
    if not tor_available():
        pytest.skip("Debian's tor and tor-gencert are not installed (apt-get install tor)")
    with MarketServer(Market.generate(seed=5, per_category=6, slow_seconds=0.3)) as server:
        try:
            network = _start_network(tmp_path_factory.mktemp("tornet"), server.port)
        except RuntimeError as first:
            try:
                network = _start_network(tmp_path_factory.mktemp("tornet"), server.port)
            except RuntimeError as second:
                pytest.fail(f"private Tor network failed twice:\n{first}\n{second}")
        try:
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
        # A fresh controller may signal NEWNYM; Tor then rate-limits it (stem tracks the wait).
        assert control.new_identity() is True
        assert control.new_identity() is False
        assert control._controller.get_newnym_wait() > 0
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


def test_sites_and_circuit_epochs_get_separate_tor_circuits(tor_market):
    """IsolateSOCKSAuth at work: each credential darkscope uses gets its own circuit."""
    network, _ = tor_market
    onion = network.onion_address
    control = Controller.from_port(address="127.0.0.1", port=network.control_port)
    control.authenticate(password=network.control_password)

    def circuits_of(username: str, password: str) -> set[str]:
        status = control.get_info("circuit-status")
        return {line.split()[0] for line in status.splitlines()
                if f'SOCKS_USERNAME="{username}"' in line
                and f'SOCKS_PASSWORD="{password}"' in line}

    async def fetch_twice() -> tuple[set[str], set[str]]:
        connection = Connection(ProxyConfig.parse(f"socks5h://127.0.0.1:{network.socks_port}"))
        try:
            seen = []
            for _ in range(2):
                session = connection.session(onion, aiohttp.CookieJar(unsafe=True))
                response = await _fetch_patiently(session, f"http://{onion}/login")
                assert response.status == 200
                seen.append(circuits_of(*connection.socks_credentials(onion)))
                await connection.new_circuit(onion)
            return seen[0], seen[1]
        finally:
            await connection.close()

    try:
        first, second = asyncio.run(fetch_twice())
    finally:
        control.close()
    assert first and second, "no circuit carried darkscope's SOCKS credentials"
    assert not first & second
