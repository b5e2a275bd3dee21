"""Each part alone: URLs, prices, templates, cookies, listings, archive, parsers, scheduler."""

from __future__ import annotations

import asyncio
import itertools
import json
import re

import pytest

from darkscope.darkweb.archive import Response, WarcArchive, read_responses, utc_now
from darkscope.darkweb.connection import Connection, ProxyConfig
from darkscope.darkweb.cookies import load_cookies
from darkscope.darkweb.frontier import Entry
from darkscope.darkweb.listings import changes, make_listing
from darkscope.darkweb.parsers import parse_response
from darkscope.darkweb.prices import parse_price
from darkscope.darkweb.scheduler import Scheduler
from darkscope.darkweb.templates import load_template
from darkscope.darkweb.urls import Scope, canonicalize, looks_binary
from darkscope.errors import InputFormatError, UsageError


@pytest.mark.parametrize(("raw", "canonical"), [
    ("HTTP://Example.ONION:80/a/./b/../c?b=2&a=1#frag", "http://example.onion/a/c?a=1&b=2"),
    ("https://x.onion:443", "https://x.onion/"),
    ("http://x.onion:8080/%7Euser/", "http://x.onion:8080/~user/"),
    ("javascript:alert(1)", None), ("mailto:a@b", None), ("http://[bad", None),
    # only unreserved characters are decoded (RFC 3986 6.2.2.2): %2F stays an escaped slash
    ("http://m.onion/a%2Fb", "http://m.onion/a%2Fb"), ("http://m.onion/a%2fb", "http://m.onion/a%2Fb"),
    ("http://m.onion/a/%2E%2E%2Fetc", "http://m.onion/a/..%2Fetc"),
    ("http://m.onion/a/%2e%2e/b", "http://m.onion/b"),  # a dot-segment, as a browser reads it
    ("http://m.onion/p?b", "http://m.onion/p?b"), ("http://m.onion/p?b&a=1", "http://m.onion/p?a=1&b"),
    ("http://m.onion/p?x=%2F&y=1+2", "http://m.onion/p?x=%2F&y=1+2"),
    ("http://m.onion/é ü?q=a b", "http://m.onion/%C3%A9%20%C3%BC?q=a%20b"),
    ("http://m.onion/100%", "http://m.onion/100%25"),
])
def test_canonicalize(raw, canonical):
    assert canonicalize(raw) == canonical


def test_canonicalize_is_idempotent():
    """canonicalize(canonicalize(u)) == canonicalize(u) over tricky and generated URLs."""
    import random

    rng = random.Random(7)
    alphabet = ["a", "Z", "0", "/", ".", "..", "%2e", "%2E", "%2f", "%2F", "%7e", "%41", "%",
                "%zz", "?", "&", "=", "+", " ", "é", "#", ";", "~", "%25", "%3F", "%26", "%3D"]
    urls = [f"http://M.onion:80/{''.join(rng.choices(alphabet, k=rng.randrange(1, 12)))}"
            for _ in range(2000)]
    for url in urls:
        once = canonicalize(url)
        assert once is not None and canonicalize(once) == once, url


def test_canonicalize_relative_and_scope():
    assert canonicalize("../p?page=2", "http://m.onion/cat/x/") == "http://m.onion/cat/p?page=2"
    scope = Scope({"m.onion"}, [re.compile("^/cat")], [re.compile("logout")])
    assert scope.allows("http://m.onion/cat/1")
    assert not scope.allows("http://m.onion/cat/logout")
    assert not scope.allows("http://other.onion/cat/1")
    assert not scope.allows("http://m.onion/vendor/1")
    assert looks_binary("http://m.onion/a/b.PNG") and not looks_binary("http://m.onion/a.b/c")


@pytest.mark.parametrize(("text", "expected"), [
    ("USD 12.50", (12.5, "USD")), ("0.0031 BTC", (0.0031, "BTC")), ("฿ 0.01", (0.01, "BTC")),
    ("$ 1,250.00", (1250.0, "USD")), ("€5", (5.0, "EUR")), ("Price: XMR 0.250 only", (0.25, "XMR")),
    ("12.5 usd", (12.5, "USD")), ("#10 0.5 BTC", (0.5, "BTC")), ("no price here 12", (None, None)),
    ("", (None, None)), (None, (None, None)),
    # a unit scales the amount; currency words must stand alone; decimal commas
    ("mBTC 500", (0.5, "BTC")), ("Shark teeth 5 pcs", (None, None)),
    ("Amateur 3 pack", (None, None)), ("1,5 BTC", (1.5, "BTC")),
    ("1 500,00 EUR", (1500.0, "EUR")), ("1.234,56 EUR", (1234.56, "EUR")),
    ("$1,250", (1250.0, "USD")), ("1.234.567 USD", (1234567.0, "USD")),
    ("1,234,56 EUR", (None, None)), ("1,2345 EUR", (None, None)),
])
def test_parse_price(text, expected):
    assert parse_price(text) == expected


def test_template_errors_name_file_and_field(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "m"\n[[page]]\nurl = "("\n[page.fields]\ntitle = "h1"\n')
    with pytest.raises(InputFormatError, match=r"bad\.toml.*page\[0\]\.url"):
        load_template(bad)
    bad.write_text('name = "m"\n[[page]]\nurl = "x"\n[page.fields]\ncolour = "h1"\n')
    with pytest.raises(InputFormatError, match=r"unknown field.*colour"):
        load_template(bad)
    bad.write_text("name = ")
    with pytest.raises(InputFormatError, match="not a valid TOML"):
        load_template(bad)

    bad.write_text('name = "m"\n[[page]]\nurl = "x"\nitem = "li"\n[page.fields]\ntitle = "a"\n')
    with pytest.raises(InputFormatError, match=r"bad\.toml.*page\[0\]\.fields: a url selector"):
        load_template(bad)


@pytest.mark.parametrize(("toml", "where"), [
    ('[[page]]\nurl = "x"\n[page.fields]\ntitle = "h1[["\n', r"page\[0\]\.fields\.title"),
    ('[[page]]\nurl = "x"\nitem = "li >"\n[page.fields]\ntitle = "a"\nurl = "a @href"\n',
     r"page\[0\]\.item"),
    ('[[page]]\nurl = "x"\n[page.fields]\ntitle = "h1"\nvendor = "a:bogus-pseudo"\n',
     r"page\[0\]\.fields\.vendor"),
    ('[follow]\nselectors = ["a.ok", "a..bad"]\n', r"follow\.selectors\[1\]"),
])
def test_bad_css_selector_is_a_template_error(tmp_path, toml, where):
    """Selectors compile at load: a typo names file and field instead of failing mid-crawl."""
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "m"\n' + toml)
    with pytest.raises(InputFormatError, match=rf"bad\.toml.*{where}: bad CSS selector"):
        load_template(bad)


def test_template_hook_and_attribute_fields(tmp_path):
    (tmp_path / "hook.py").write_text(
        "def fix(record, node):\n"
        "    if record['title'] == 'skip':\n        return None\n"
        "    record['vendor'] = record['vendor'].upper()\n    return record\n")
    path = tmp_path / "m.toml"
    path.write_text('name = "m"\nhook = "hook.py"\n[[page]]\nurl = "^/c"\nitem = "li"\n'
                    '[page.fields]\ntitle = "a"\nurl = "a @href"\nprice = ".p"\nvendor = ".v"\n')
    template = load_template(path, allow_hook=True)
    html = ("<ul><li><a href='/l/1'>Kit</a><i class=p>USD 5</i><b class=v>bob</b></li>"
            "<li><a href='/l/2'>skip</a><i class=p>USD 6</i><b class=v>al</b></li></ul>")
    listings, errors = parse_response(_page("http://m.onion/c", html), template, "m")
    assert errors == []
    assert [(r["title"], r["url"], r["price"], r["vendor"]) for r in listings] == [
        ("Kit", "http://m.onion/l/1", 5.0, "BOB")]
    # an item whose link is missing is a parse error, not a listing at the page URL
    html = html.replace("<a href='/l/1'>Kit</a>", "<a>Kit</a>")
    listings, errors = parse_response(_page("http://m.onion/c", html), template, "m")
    assert listings == [] and [e.error for e in errors] == ["field url: not an http(s) URL: None"]


def test_hook_needs_opt_in_and_must_sit_beside_its_template(tmp_path):
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w').close()\ndef fix(record, node):\n    return record\n"
    (tmp_path / "outside.py").write_text(code)
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "hook.py").write_text(code)
    path = folder / "m.toml"
    rule = '[[page]]\nurl = "x"\n[page.fields]\ntitle = "h1"\n'
    path.write_text(f'name = "m"\nhook = "hook.py"\n{rule}')
    with pytest.raises(UsageError, match="--allow-hook"):
        load_template(path)
    assert not marker.exists()
    for escape in ("../outside.py", str(tmp_path / "outside.py")):
        path.write_text(f'name = "m"\nhook = {escape!r}\n{rule}')
        with pytest.raises(InputFormatError, match="outside the template's folder"):
            load_template(path, allow_hook=True)
        assert not marker.exists()
    path.write_text(f'name = "m"\nhook = "hook.py"\n{rule}')
    assert load_template(path, allow_hook=True).hook is not None
    assert marker.exists()


def _page(url: str, html: str | bytes, content_type: str = "text/html") -> Response:
    body = html.encode() if isinstance(html, str) else html
    return Response(url, 200, "OK", [("Content-Type", content_type)], body, utc_now())


@pytest.mark.parametrize(("html", "titles", "error"), [
    (b"", [], "unparseable HTML: Document is empty"),
    (b"\x00\xff\xfe" * 1000, [], "field title: missing or empty"),
    (b"<div>" * 200_000, [], "field title: missing or empty"),
    (b"<table><tr><td><b><i>" * 2000 + b"<a href", [], "field title: missing or empty"),
    (b"<html><body><h1 class='title'>\xc3\x28 bad utf-8</h1></body></html>",
     ["\ufffd( bad utf-8"], None),
])
def test_hostile_html_never_raises(html, titles, error):
    """Hostile pages give exactly the listing or the one parse error (with the URL) expected;
    the generic parser finds no listing blocks in them."""
    url = "http://m.onion/listing/1"
    listings, errors = parse_response(_page(url, html), load_template("testmarket"), "m")
    assert [row["title"] for row in listings] == titles
    assert [(e.url, e.error) for e in errors] == ([(url, error)] if error else [])
    listings, errors = parse_response(_page(url, html), None, "m")
    assert listings == []
    assert [e.error for e in errors] == ([error] if error and "unparseable" in error else [])


def test_invalid_listing_is_a_parse_error_with_url():
    template = load_template("testmarket")
    html = "<h1 class='title'>Kit</h1><span class='price'>ZZZ 5 and 3 BTC</span>"
    listings, _ = parse_response(_page("http://m.onion/listing/1", html), template, "m")
    assert listings[0]["price"] == 3.0
    listings, errors = parse_response(
        _page("http://m.onion/listing/2", "<h1 class='title'> </h1>"), template, "m")
    assert listings == [] and errors[0].url == "http://m.onion/listing/2"
    assert "title" in errors[0].error


def test_make_listing_validates_fields():
    ok = make_listing({"title": "t", "url": "http://m.onion/1", "price": "0.5 BTC"}, "m", "d", "s")
    assert (ok["price"], ok["currency"]) == (0.5, "BTC")
    with pytest.raises(ValueError, match="url"):
        make_listing({"title": "t", "url": "ftp://x"}, "m", "d", "s")
    with pytest.raises(ValueError, match="currency"):
        make_listing({"title": "t", "url": "http://m/1", "price": 5.0, "currency": "DOGE"},
                     "m", "d", "s")


def test_changes_between_crawls():
    old = [{"url": "a", "title": "x", "price": 1.0}, {"url": "b", "title": "y", "price": 2.0}]
    new = [{"url": "a", "title": "x", "price": 1.5}, {"url": "c", "title": "z", "price": 3.0}]
    found = {(c["change"], c["url"]): c["fields"] for c in changes(old, new)}
    assert found == {("changed", "a"): ["price"], ("new", "c"): [], ("removed", "b"): []}


def test_cookie_files(tmp_path):
    netscape = tmp_path / "c.txt"
    netscape.write_text("# Netscape HTTP Cookie File\n"
                        ".m.onion\tTRUE\t/\tFALSE\t0\tsid\tabc\n")
    (cookie,) = load_cookies(netscape)
    assert (cookie.name, cookie.value, cookie.domain, cookie.subdomains) == \
        ("sid", "abc", "m.onion", True)
    exported = tmp_path / "c.json"
    exported.write_text(json.dumps([{"name": "sid", "value": "v", "domain": "m.onion"}]))
    assert load_cookies(exported)[0].value == "v"
    exported.write_text('[{"name": "sid"}]')
    with pytest.raises(InputFormatError, match="cookie 0"):
        load_cookies(exported)
    netscape.write_text("sid=abc\n")
    with pytest.raises(InputFormatError, match="Netscape"):
        load_cookies(netscape)


def test_killed_warc_tail_is_dropped(tmp_path):
    path = tmp_path / "a.warc.gz"
    archive = WarcArchive(path)
    ends = [archive.write(_page(f"http://m.onion/{i}", f"<p>{i}</p>"))[1] for i in range(3)]
    archive.close()
    with open(path, "r+b") as stream:
        stream.truncate(ends[2] - 7)  # the third record loses its gzip trailer
    assert [r.url for r, _, _ in read_responses(path)] == ["http://m.onion/0", "http://m.onion/1"]
    assert [end for _, _, end in read_responses(path, ends[0])] == [ends[1]]


def test_scheduler_keeps_per_site_delay_and_concurrency():
    async def run() -> tuple[list[float], int]:
        scheduler = Scheduler(per_site=1, delay=0.05)
        for i in range(4):
            scheduler.push(Entry(f"http://a.onion/{i}", 0))
        scheduler.push(Entry("http://b.onion/0", 0))
        loop = asyncio.get_running_loop()
        starts: list[float] = []
        peak = 0
        active = 0

        async def worker() -> None:
            nonlocal active, peak
            while (entry := await scheduler.get()) is not None:
                if entry.host == "a.onion":
                    starts.append(loop.time())
                active += 1
                peak = max(peak, active)
                await asyncio.sleep(0.01)
                active -= 1
                scheduler.release(entry)

        await asyncio.gather(*(worker() for _ in range(4)))
        return starts, peak

    starts, peak = asyncio.run(run())
    assert len(starts) == 4
    assert min(b - a for a, b in itertools.pairwise(starts)) >= 0.045
    assert peak == 2  # one per site: a.onion and b.onion


def test_retry_backoff_does_not_block_its_site():
    async def run() -> list[str]:
        scheduler = Scheduler(per_site=1, delay=0.0)
        loop = asyncio.get_running_loop()
        scheduler.push(Entry("http://a.onion/retry", 0, not_before=loop.time() + 0.2))
        scheduler.push(Entry("http://a.onion/next", 0))
        order = []
        while (entry := await scheduler.get()) is not None:
            order.append(entry.url.rsplit("/", 1)[1])
            scheduler.release(entry)
        return order

    assert asyncio.run(run()) == ["next", "retry"]


def test_each_site_gets_its_own_circuit_credentials():
    connection = Connection(ProxyConfig.parse("socks5h://127.0.0.1:9050"))
    first = connection.socks_credentials("a.onion")
    assert first != connection.socks_credentials("b.onion")
    assert first == connection.socks_credentials("a.onion")
    asyncio.run(connection.new_circuit("a.onion"))
    assert connection.socks_credentials("a.onion") != first
    fixed = Connection(ProxyConfig.parse("socks5h://me:secret@127.0.0.1:9050"))
    assert fixed.socks_credentials("a.onion") == ("me", "secret")


def test_page_body_is_hashed_once_for_all_its_listings(monkeypatch):
    """A page of many listings hashes its body once, not once per listing (was quadratic)."""
    import darkscope.darkweb.archive as archive

    calls = []
    real = archive.hashlib.sha256

    def counting(data: bytes = b""):
        calls.append(len(data))
        return real(data)

    monkeypatch.setattr(archive.hashlib, "sha256", counting)
    items = "".join(f"<li><a href='/l/{i}'>Kit {i}</a><i>USD {i}</i></li>" for i in range(300))
    listings, errors = parse_response(_page("http://m.onion/c", f"<ul>{items}</ul>"), None, "m")
    assert len(listings) == 300 and errors == []
    assert len({row["page_sha256"] for row in listings}) == 1
    assert len(calls) == 1


def test_allow_host_values_are_canonical():
    from darkscope.darkweb.crawler import CrawlConfig

    config = CrawlConfig(["http://m.onion/"],
                         allow_hosts=["M.onion", "m.onion:80", "X.ONION:8080", "https://s.onion:443"])
    assert config.scope().hosts == {"m.onion", "x.onion:8080", "s.onion"}
    assert config.scope().allows("http://x.onion:8080/a")
    with pytest.raises(UsageError, match="allow-host"):
        CrawlConfig(["http://m.onion/"], allow_hosts=["m.onion:notaport"]).scope()


def test_scheduler_forgets_sites_with_nothing_queued():
    async def run() -> tuple[int, int]:
        scheduler = Scheduler(per_site=2, delay=0.0)
        for site in range(200):
            scheduler.push(Entry(f"http://s{site}.onion/", 0))
        scheduler.push(Entry("http://last.onion/a", 0))
        scheduler.push(Entry("http://last.onion/b", 0))
        for _ in range(200):
            scheduler.release(await scheduler.get())
        remaining = len(scheduler._queues)
        scheduler.release(await scheduler.get())
        scheduler.release(await scheduler.get())
        return remaining, len(scheduler._queues)

    assert asyncio.run(run()) == (1, 0)


def _socks_connect(port: int, address: bytes, dest_port: int) -> int:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"\x05\x01\x00")
        assert sock.recv(2) == b"\x05\x00"
        sock.sendall(b"\x05\x01\x00\x03" + bytes([len(address)]) + address
                     + dest_port.to_bytes(2, "big"))
        return sock.recv(10)[1]


def test_loopback_socks_relay_reaches_loopback_only():
    """The demo's relay speaks SOCKS5 and refuses anything but 127.0.0.0/8 (RFC 1928 codes)."""
    import socket

    from darkscope.darkweb.loopback_socks import LoopbackSocks5

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        free = closed.getsockname()[1]
    with LoopbackSocks5() as proxy:
        assert _socks_connect(proxy.port, b"10.0.0.1", 80) == 2      # not allowed
        assert _socks_connect(proxy.port, b"example.org", 80) == 2   # no name resolution
        assert _socks_connect(proxy.port, b"127.0.0.1", free) == 5   # connection refused
