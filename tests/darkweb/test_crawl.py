"""End-to-end crawls of the test market through a real SOCKS5 proxy (microsocks) on loopback."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pyarrow.parquet as pq
import pytest
from yarl import URL

from darkscope.cli import main
from darkscope.darkweb.archive import read_responses
from darkscope.darkweb.connection import Connection, ProxyConfig, ProxyLeakRefused
from darkscope.darkweb.crawler import CRASH_EXIT_CODE, DEFAULT_USER_AGENT
from darkscope.darkweb.fetcher import Limits, TransientError, fetch
from darkscope.darkweb.testmarket import SESSION_COOKIE, Market, MarketServer

from .bazaar import Bazaar
from .conftest import comparable, read_jsonl, write_cookies
from .tornet import free_port

pytestmark = pytest.mark.network


def crawl_args(server, socks_port: int, out: Path, cookies: Path | None, *extra: str) -> list[str]:
    args = ["crawl", server.base + "/", "--proxy", f"socks5h://127.0.0.1:{socks_port}",
            "--market", "testmarket", "-o", str(out), "--timeout", "5", "--retries", "1",
            "--no-progress", *extra]
    return [*args, "--cookies", str(cookies)] if cookies else args


def archived_urls(out: Path) -> list[str]:
    return [r.url for path in sorted((out / "warc").glob("*.warc.gz"))
            for r, _, _ in read_responses(path)]


def test_crawl_extracts_every_listing_field(market, socks_port, tmp_path, capsys):
    out = tmp_path / "crawl"
    cookies = write_cookies(tmp_path / "cookies.txt", market)
    assert main(crawl_args(market, socks_port, out, cookies, "--max-bytes", "1000000")) == 0
    listings = read_jsonl(out / "listings.jsonl")
    assert comparable(listings) == market.market.truth(market.base)
    assert all(len(row["page_sha256"]) == 64 and row["crawled_at"] for row in listings)
    errors = read_jsonl(out / "parse-errors.jsonl")
    assert [(e["url"], "title" in e["error"]) for e in errors] == [
        (market.base + "/listing/0", True)]

    requests = Counter(market.market.requests)
    assert max(requests.values()) == 1, "a page was requested twice"
    assert "/img/logo.png" not in requests and "/img/product.jpg" not in requests
    db = sqlite3.connect(out / "state.sqlite")
    states = dict(db.execute("SELECT url, state || ':' || coalesce(error, '') FROM urls"))
    assert states[market.base + "/files/tool"].startswith("skipped:not text")
    assert "redirect loop" in states[market.base + "/loop/b"]
    assert not any("127.0.0.2" in url for url in states), "followed a link out of scope"
    # /category/x and /category/x?page=1 serve the same body, so do the two 404 pages:
    # fetched, but their links and listings are taken once.
    duplicates = dict(db.execute("SELECT url, duplicate_of FROM urls WHERE duplicate_of NOT NULL"))
    expected = {f"{market.base}/category/{slug}?page=1": f"{market.base}/category/{slug}"
                for slug in ("exploits", "malware", "accounts", "services")}
    expected[f"{market.base}/missing/img"] = f"{market.base}/missing/1"
    assert duplicates == expected
    huge = next(r for path in (out / "warc").glob("*.warc.gz")
                for r, _, _ in read_responses(path) if r.url.endswith("/huge"))
    assert huge.truncated and len(huge.body) == 1_000_000
    archived = [u for (u,) in db.execute("SELECT url FROM urls WHERE warc_file NOT NULL")]
    assert sorted(archived_urls(out)) == sorted(archived)
    assert {u for u, s in states.items() if s.startswith("done")} <= set(archived)


def test_login_wall_without_cookies_is_named_with_the_fix(market, socks_port, tmp_path,
                                                          capsys):
    out = tmp_path / "crawl"
    assert main(crawl_args(market, socks_port, out, None)) == 1
    assert read_jsonl(out / "listings.jsonl") == []
    assert set(market.market.requests) == {"/", "/login"}
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert (f"login wall: {market.base}/ redirected to the login form {market.base}/login"
            in err)
    assert "no session cookie was given" in err and "--cookie NAME=VALUE" in err

    # the fix the message gives: the cookie as the test market prints it, and --recrawl
    cookie = f"{SESSION_COOKIE}={market.market.token}"
    assert main([*crawl_args(market, socks_port, out, None), "--recrawl", "--cookie",
                 cookie]) == 0
    assert read_jsonl(out / "listings.jsonl")
    assert any(path.startswith("/category/") for path in market.market.requests)


def test_rejected_cookie_is_told_apart_from_none(market, socks_port, tmp_path, capsys):
    out = tmp_path / "crawl"
    args = [*crawl_args(market, socks_port, out, None), "--cookie", f"{SESSION_COOKIE}=stale"]
    assert main(args) == 1
    assert "the session cookie given was not accepted" in capsys.readouterr().err


@pytest.mark.parametrize(("cookie_file", "pair", "message"), [
    ("nonsense\n", None, "not a Netscape cookies.txt"),
    ('[{"name": "x"}]', None, "cookie 0: needs name, value and domain"),
    (None, "no-equals-sign", "expected NAME=VALUE"),
])
def test_bad_cookies_leave_no_crawl_state(cookie_file, pair, message, market, socks_port,
                                          tmp_path, capsys):
    out = tmp_path / "crawl"
    args = crawl_args(market, socks_port, out, None)
    if cookie_file is not None:
        (tmp_path / "cookies.txt").write_text(cookie_file)
        args += ["--cookies", str(tmp_path / "cookies.txt")]
    if pair is not None:
        args += ["--cookie", pair]
    assert main(args) in (1, 2)
    assert message in capsys.readouterr().err
    assert not out.exists()  # so the corrected command runs without --resume
    assert market.market.requests == []


def test_json_cookie_export_passes_login(market, socks_port, tmp_path):
    out = tmp_path / "crawl"
    cookies = write_cookies(tmp_path / "cookies.json", market, fmt="json")
    assert main(crawl_args(market, socks_port, out, cookies, "--max-pages", "12")) == 0
    db = sqlite3.connect(out / "state.sqlite")
    assert db.execute("SELECT count(*) FROM urls WHERE state != 'pending'").fetchone()[0] == 12
    assert any(path.startswith("/category/") for path in market.market.requests)


def test_slow_page_is_retried_with_backoff_then_failed(market, socks_port, tmp_path, capsys):
    out = tmp_path / "crawl"
    cookies = write_cookies(tmp_path / "cookies.txt", market)
    args = crawl_args(market, socks_port, out, cookies, "--allow-path", "^/slow$",
                      "--backoff", "0.2", "--new-circuit-after", "2")
    args[1] = market.base + "/slow"
    args[args.index("--timeout") + 1] = "0.1"
    args[args.index("--retries") + 1] = "3"
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["retried"] == 3 and summary["new_circuits"] == 2
    db = sqlite3.connect(out / "state.sqlite")
    state, attempts, error = db.execute(
        "SELECT state, attempts, error FROM urls WHERE url=?", (market.base + "/slow",)).fetchone()
    assert (state, attempts) == ("failed", 4) and "timed out" in error
    assert market.market.requests == ["/slow"] * 4


def test_parse_rereads_archive_to_parquet(market, socks_port, tmp_path, capsys):
    out = tmp_path / "crawl"
    cookies = write_cookies(tmp_path / "cookies.txt", market)
    assert main(crawl_args(market, socks_port, out, cookies)) == 0
    served = len(market.market.requests)
    parquet = tmp_path / "listings.parquet"
    assert main(["parse", str(out), "-o", str(parquet), "--market", "testmarket"]) == 0
    assert len(market.market.requests) == served, "parse must not crawl"
    assert comparable(pq.read_table(parquet).to_pylist()) == market.market.truth(market.base)
    # Without a template the generic parser finds the category pages' listing blocks and
    # merges each listing's own page into it: every field as the template reads it.
    generic = tmp_path / "generic.jsonl"
    assert main(["parse", str(out), "-o", str(generic)]) == 0
    host = market.base.removeprefix("http://")
    assert comparable(read_jsonl(generic)) == market.market.truth(market.base, market=host)


def test_recrawl_records_new_changed_removed(market, socks_port, tmp_path, capsys):
    out = tmp_path / "crawl"
    cookies = write_cookies(tmp_path / "cookies.txt", market)
    assert main(crawl_args(market, socks_port, out, cookies)) == 0
    data = market.market
    data.listings[4]["price_text"], data.listings[4]["price"] = "USD 99.99", 99.99
    data.listings[4]["currency"] = "USD"
    data.retired.add(data.listings[9]["id"])
    data.listings.append({**data.listings[0], "id": len(data.listings) + 1, "title": "new kit"})
    assert main(crawl_args(market, socks_port, out, cookies)) == 2  # exists: needs a mode
    assert main(crawl_args(market, socks_port, out, cookies, "--recrawl")) == 0
    changes = {(c["change"], c["url"].rsplit("/", 1)[1]): c
               for c in read_jsonl(out / "changes.jsonl")}
    assert set(changes) == {("changed", "5"), ("removed", "10"), ("new", str(len(data.listings)))}
    assert "price" in changes["changed", "5"]["fields"]
    assert changes["changed", "5"]["listing"]["price"] == 99.99
    assert comparable(read_jsonl(out / "listings.jsonl")) == data.truth(market.base)


def test_recrawl_cut_short_reports_unvisited_listings_as_not_recrawled(market, socks_port,
                                                                       tmp_path):
    """A listing the second crawl never reached (page budget) is not 'removed'."""
    out = tmp_path / "crawl"
    cookies = write_cookies(tmp_path / "cookies.txt", market)
    assert main(crawl_args(market, socks_port, out, cookies)) == 0
    market.market.requests.clear()
    assert main(crawl_args(market, socks_port, out, cookies, "--recrawl", "--max-pages",
                           "10")) == 0
    diff = read_jsonl(out / "changes.jsonl")
    kinds = Counter(c["change"] for c in diff)
    assert kinds["removed"] == 0 and kinds["not re-crawled"] > 0, kinds
    fetched = {market.base + path for path in market.market.requests}
    assert not any(c["url"] in fetched for c in diff if c["change"] == "not re-crawled")


def test_kill_9_and_resume_lose_nothing_and_repeat_nothing(market, socks_port, tmp_path):
    cookies = write_cookies(tmp_path / "cookies.txt", market)
    out = tmp_path / "crawl"
    args = crawl_args(market, socks_port, out, cookies, "--delay", "0.03", "--per-site", "2",
                      "--concurrency", "2")
    command = [sys.executable, "-m", "darkscope.cli", *args]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state = out / "state.sqlite"
    deadline = time.monotonic() + 60
    done = 0
    while done < 25 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
        if state.exists():
            try:
                with sqlite3.connect(state) as db:
                    done = db.execute("SELECT count(*) FROM urls WHERE state='done'").fetchone()[0]
            except sqlite3.OperationalError:
                continue
    assert process.poll() is None, f"crawl ended before the kill: {process.stderr.read()}"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    served_before = len(market.market.requests)
    assert not (out / "listings.jsonl").exists()

    # --resume needs only the directory and the proxy: limits, template, cookies are kept.
    resume = [sys.executable, "-m", "darkscope.cli", "crawl", "-o", str(out), "--resume",
              "--proxy", f"socks5h://127.0.0.1:{socks_port}", "--no-progress"]
    resumed = subprocess.run(resume, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    urls = archived_urls(out)
    assert len(urls) == len(set(urls)), "a page was archived twice"
    requests = Counter(market.market.requests)
    repeated = sum(n - 1 for n in requests.values())
    assert repeated <= 2, f"more re-fetches than requests in flight at the kill: {requests}"
    assert served_before < len(market.market.requests)
    assert comparable(read_jsonl(out / "listings.jsonl")) == market.market.truth(market.base)


def test_exit_between_warc_write_and_commit_is_replayed_once(market, socks_port, tmp_path):
    """Deterministic crash window: the process exits after archiving its 8th response and
    before committing it; --resume replays exactly that record and fetches nothing twice."""
    cookies = write_cookies(tmp_path / "cookies.txt", market)
    out = tmp_path / "crawl"
    args = crawl_args(market, socks_port, out, cookies, "--concurrency", "1", "--per-site", "1")
    env = {**os.environ, "DARKSCOPE_TEST_CRASH_AFTER_WARC_WRITES": "8"}
    crashed = subprocess.run([sys.executable, "-m", "darkscope.cli", *args], env=env,
                             capture_output=True, text=True, timeout=120)
    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr
    assert len(market.market.requests) == 8
    db = sqlite3.connect(out / "state.sqlite")
    assert db.execute("SELECT count(*) FROM urls WHERE warc_file NOT NULL").fetchone()[0] == 7
    db.close()
    resume = [sys.executable, "-m", "darkscope.cli", "crawl", "-o", str(out), "--resume",
              "--proxy", f"socks5h://127.0.0.1:{socks_port}", "--no-progress"]
    resumed = subprocess.run(resume, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout.strip().splitlines()[-1])["replayed"] == 1
    assert max(Counter(market.market.requests).values()) == 1, "a page was fetched twice"
    urls = archived_urls(out)
    assert len(urls) == len(set(urls))
    assert comparable(read_jsonl(out / "listings.jsonl")) == market.market.truth(market.base)


def test_proxy_down_means_no_request_at_all(market, tmp_path, capsys):
    out = tmp_path / "crawl"
    cookies = write_cookies(tmp_path / "cookies.txt", market)
    closed = free_port()
    assert main(crawl_args(market, closed, out, cookies)) == 1
    assert "cannot reach the SOCKS proxy" in capsys.readouterr().err
    assert market.market.requests == []


def test_onion_without_proxy_is_refused(tmp_path, capsys):
    out = tmp_path / "c"
    code = main(["crawl", "http://abcdefghijklmnop.onion/", "--direct", "-o", str(out),
                 "--no-progress"])
    assert code == 2 and "needs the Tor proxy" in capsys.readouterr().err
    assert not out.exists()
    # An onion crawl (here: its proxy was down) must not be resumed with --direct, which
    # would record every pending .onion URL as failed.
    closed = free_port()
    assert main(["crawl", "http://abcdefghijklmnop.onion/", "--proxy",
                 f"socks5h://127.0.0.1:{closed}", "-o", str(out), "--no-progress"]) == 1
    assert main(["crawl", "-o", str(out), "--resume", "--direct", "--no-progress"]) == 2
    assert "needs the Tor proxy" in capsys.readouterr().err
    db = sqlite3.connect(out / "state.sqlite")
    assert db.execute("SELECT state FROM urls").fetchall() == [("pending",)]
    with pytest.raises(ProxyLeakRefused):
        Connection(ProxyConfig.parse(None)).check("http://abcdefghijklmnop.onion/")


def test_resume_applies_limits_given_again(market, socks_port, tmp_path):
    out = tmp_path / "crawl"
    cookies = write_cookies(tmp_path / "cookies.txt", market)
    assert main(crawl_args(market, socks_port, out, cookies, "--max-pages", "3")) == 0
    db = sqlite3.connect(out / "state.sqlite")
    done = "SELECT count(*) FROM urls WHERE state != 'pending'"
    assert db.execute(done).fetchone()[0] == 3
    resume = ["crawl", "-o", str(out), "--resume", "--proxy", f"socks5h://127.0.0.1:{socks_port}",
              "--no-progress"]
    assert main([*resume, "--max-pages", "7"]) == 0
    assert db.execute(done).fetchone()[0] == 7
    assert main(resume) == 0  # the new limit is kept for the next resume
    assert db.execute(done).fetchone()[0] == 7


def test_user_agent_and_max_redirects(market, socks_port, tmp_path):
    out = tmp_path / "crawl"
    cookies = write_cookies(tmp_path / "cookies.txt", market)
    args = crawl_args(market, socks_port, out, cookies, "--max-redirects", "0",
                      "--user-agent", "Mozilla/5.0 (test)", "--allow-path", "^/(loop/a)?$")
    assert main(args) == 0
    assert market.market.user_agents == {"Mozilla/5.0 (test)"}
    db = sqlite3.connect(out / "state.sqlite")
    (error,) = db.execute("SELECT error FROM urls WHERE url=?",
                          (market.base + "/loop/a",)).fetchone()
    assert error == "more than 0 redirects"
    market.market.user_agents.clear()
    assert main(crawl_args(market, socks_port, tmp_path / "c2", cookies, "--max-pages", "1")) == 0
    assert market.market.user_agents == {DEFAULT_USER_AGENT}
    assert "aiohttp" not in DEFAULT_USER_AGENT.lower()


@pytest.mark.parametrize("proxy", ["socks5://127.0.0.1:9050", "http://127.0.0.1:8118",
                                   "socks5h://127.0.0.1"])
def test_proxy_that_could_resolve_locally_is_rejected(proxy, tmp_path, capsys):
    assert main(["crawl", "http://x.onion/", "--proxy", proxy, "-o", str(tmp_path / "c")]) == 2
    assert "socks5h://" in capsys.readouterr().err


def test_names_are_resolved_by_the_proxy_not_locally(market, socks_port, monkeypatch):
    asked: list[str] = []
    real = socket.getaddrinfo

    def spy(host, *args, **kwargs):
        asked.append(host)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", spy)

    async def get() -> int:
        connection = Connection(ProxyConfig.parse(f"socks5h://127.0.0.1:{socks_port}"))
        try:
            site = f"localhost:{market.port}"
            response = await fetch(connection.session(site, aiohttp.CookieJar(unsafe=True)),
                                   f"http://{site}/login", Limits(timeout=10))
        finally:
            await connection.close()
        return response.status

    assert asyncio.run(get()) == 200
    assert "localhost" not in asked
    assert market.market.requests == ["/login"]


def test_warc_files_are_valid_gzip_members(market, socks_port, tmp_path):
    out = tmp_path / "crawl"
    cookies = write_cookies(tmp_path / "cookies.txt", market)
    assert main(crawl_args(market, socks_port, out, cookies, "--max-pages", "5")) == 0
    for path in (out / "warc").glob("*.warc.gz"):
        text = gzip.decompress(path.read_bytes())
        assert text.count(b"WARC/1.") >= 1 and b"WARC-Target-URI: http://" in text


def test_damaged_archive_or_state_is_a_clear_error(market, socks_port, tmp_path, capsys):
    out = tmp_path / "crawl"
    cookies = write_cookies(tmp_path / "cookies.txt", market)
    assert main(crawl_args(market, socks_port, out, cookies, "--max-pages", "6")) == 0
    (warc,) = (out / "warc").glob("*.warc.gz")
    data = bytearray(warc.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(64)
    warc.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["parse", str(out), "-o", str(tmp_path / "l.jsonl")]) == 1
    assert f"{warc}" in capsys.readouterr().err
    (out / "state.sqlite").write_bytes(b"not a database" * 100)
    assert main(["parse", str(out), "-o", str(tmp_path / "l.jsonl")]) == 1
    assert "not a darkscope crawl state" in capsys.readouterr().err


def test_direct_crawl_for_clearnet_sites(market, tmp_path):
    out = tmp_path / "crawl"
    cookies = write_cookies(tmp_path / "cookies.txt", market)
    assert main(["crawl", market.base + "/", "--direct", "--market", "testmarket", "--cookies",
                 str(cookies), "-o", str(out), "--timeout", "5", "--no-progress"]) == 0
    assert comparable(read_jsonl(out / "listings.jsonl")) == market.market.truth(market.base)


def test_resume_runs_a_remembered_hook_only_with_allow_hook(market, tmp_path, capsys):
    """--resume reloads the stored template: its hook must be allowed again, every time."""
    from darkscope.darkweb.templates import builtin

    folder = tmp_path / "tpl"
    folder.mkdir()
    marker = tmp_path / "hook-ran"
    (folder / "hook.py").write_text(
        f"open({str(marker)!r}, 'a').write('x')\n"
        "def fix(record, node):\n    return record\n")
    template = folder / "m.toml"
    template.write_text('hook = "hook.py"\n' + builtin("testmarket").read_text())
    out = tmp_path / "crawl"
    cookies = write_cookies(tmp_path / "cookies.txt", market)
    base = ["crawl", "-o", str(out), "--direct", "--timeout", "5", "--no-progress"]
    first = [*base, market.base + "/", "--market", str(template), "--cookies", str(cookies),
             "--max-pages", "3"]
    assert main(first) == 2
    assert "--allow-hook" in capsys.readouterr().err and not out.exists()
    assert main([*first, "--allow-hook"]) == 0
    assert marker.read_text() == "x"
    marker.unlink()
    assert main([*base, "--resume"]) == 2
    assert "--allow-hook" in capsys.readouterr().err
    assert not marker.exists()
    assert main(["parse", str(out), "-o", str(tmp_path / "l.jsonl"), "--market",
                 str(template)]) == 2
    assert not marker.exists()


def test_new_circuit_lets_requests_in_flight_finish(market, socks_port):
    """Rotating a site's circuit mid-request: the request completes on the old session, which
    is closed afterwards; the next request gets a new session (new SOCKS credentials)."""

    async def run() -> None:
        connection = Connection(ProxyConfig.parse(f"socks5h://127.0.0.1:{socks_port}"))
        jar = aiohttp.CookieJar(unsafe=True)
        jar.update_cookies({SESSION_COOKIE: market.market.token}, URL(market.base))
        site = f"127.0.0.1:{market.port}"

        async def slow() -> tuple[int, aiohttp.ClientSession]:
            async with connection.using(site, jar) as session:
                response = await fetch(session, f"{market.base}/slow", Limits(timeout=10))
                return response.status, session

        try:
            task = asyncio.create_task(slow())
            while "/slow" not in market.market.requests:
                await asyncio.sleep(0.01)
            await connection.new_circuit(site)
            status, old = await task
            assert status == 200
            assert old.closed
            async with connection.using(site, jar) as session:
                assert session is not old and not session.closed
        finally:
            await connection.close()

    asyncio.run(run())


def test_final_5xx_and_non_text_responses_are_archived(market, socks_port, tmp_path):
    """Every response is archived: a final 503 with its body, a binary with headers only."""
    out = tmp_path / "crawl"
    cookies = write_cookies(tmp_path / "cookies.txt", market)
    args = crawl_args(market, socks_port, out, cookies, "--backoff", "0.05", "--allow-path",
                      "^/(busy|files/tool)$")
    args[1] = market.base + "/busy"
    args.insert(2, market.base + "/files/tool")
    assert main(args) == 0
    assert Counter(market.market.requests) == {"/busy": 2, "/files/tool": 1}
    db = sqlite3.connect(out / "state.sqlite")
    states = {url: rest for url, *rest in db.execute("SELECT url, state, status, warc_file "
                                                     "FROM urls")}
    assert states[market.base + "/busy"][:2] == ["failed", 503]
    assert states[market.base + "/files/tool"][:2] == ["skipped", 200]
    assert all(warc is not None for _, _, warc in states.values())
    records = {r.url: r for path in (out / "warc").glob("*.warc.gz")
               for r, _, _ in read_responses(path)}
    busy, tool = records[market.base + "/busy"], records[market.base + "/files/tool"]
    assert busy.status == 503 and b"Service unavailable" in busy.body
    assert busy.header("Retry-After") == "1"
    assert tool.status == 200 and tool.body == b"" and tool.truncated
    assert tool.content_type not in ("", "text/html")


def test_silent_socks_proxy_is_a_retryable_timeout():
    """A proxy that accepts but never answers the SOCKS handshake (an overloaded Tor client)
    times out as a retryable error, not an exception that stops the crawl."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()

        async def get() -> None:
            connection = Connection(ProxyConfig.parse(
                f"socks5h://127.0.0.1:{silent.getsockname()[1]}"))
            try:
                session = connection.session("m.onion", aiohttp.CookieJar(unsafe=True))
                await fetch(session, "http://m.onion/", Limits(timeout=5, connect_timeout=0.3))
            finally:
                await connection.close()

        with pytest.raises(TransientError, match="timed out"):
            asyncio.run(get())


def test_max_depth_and_deny_path(market, socks_port, tmp_path):
    cookies = write_cookies(tmp_path / "cookies.txt", market)
    out = tmp_path / "shallow"
    assert main(crawl_args(market, socks_port, out, cookies, "--max-depth", "1")) == 0
    db = sqlite3.connect(out / "state.sqlite")
    assert db.execute("SELECT max(depth) FROM urls").fetchone()[0] == 1
    assert any(p.startswith("/category/") for p in market.market.requests)
    # the home page links one listing itself; the others are two links away
    assert {p for p in market.market.requests if p.startswith("/listing/")} == {"/listing/0"}
    market.market.requests.clear()
    out = tmp_path / "denied"
    assert main(crawl_args(market, socks_port, out, cookies, "--deny-path", "^/vendor/",
                           "--deny-path", "page=")) == 0
    requested = market.market.requests
    assert any(p.startswith("/listing/") for p in requested)
    assert not any(p.startswith("/vendor/") or "page=" in p for p in requested)
    db = sqlite3.connect(out / "state.sqlite")
    assert db.execute("SELECT count(*) FROM urls WHERE url LIKE '%/vendor/%'").fetchone()[0] == 0


def test_allow_host_limits_scope_in_any_spelling(market, socks_port, tmp_path):
    cookies = write_cookies(tmp_path / "cookies.txt", market)
    elsewhere = crawl_args(market, socks_port, tmp_path / "a", cookies, "--allow-host",
                           "other.onion")
    assert main(elsewhere) == 0
    assert market.market.requests == ["/"]  # the seed only: its links are out of scope
    market.market.requests.clear()
    spelled = crawl_args(market, socks_port, tmp_path / "b", cookies, "--allow-host",
                         f"HTTP://127.0.0.1:{market.port}/", "--max-pages", "5")
    assert main(spelled) == 0
    assert len(market.market.requests) == 5


def test_generic_parser_merges_product_pages_of_an_unknown_layout(socks_port, tmp_path):
    """No template: index tables give title, seller and price; each product page (some
    reached through a redirect) adds the vendor, category, shipping and the full description,
    and wins where both say something."""
    bazaar = Bazaar(Market.generate(seed=5, per_category=5))
    with MarketServer(bazaar) as server:
        out = tmp_path / "crawl"
        assert main(["crawl", server.base + "/", "--proxy", f"socks5h://127.0.0.1:{socks_port}",
                     "-o", str(out), "--timeout", "5", "--no-progress"]) == 0
    listings = read_jsonl(out / "listings.jsonl")
    assert comparable(listings) == bazaar.truth(server.base)
    assert all(len(row["description"]) > 200 for row in listings)
    assert any(path.startswith("/p/") for path in bazaar.requests)  # redirects were followed
