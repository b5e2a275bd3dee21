"""A local market for tests and benchmarks, generated from known data.

It has what real markets have and what breaks crawlers: categories with pagination, listing and
vendor pages, a login wall with a session cookie, a redirect loop, a huge page, a slow page,
broken links, binaries and hostile markup. Every listing it serves is in :attr:`Market.listings`,
so tests compare what a crawl extracted with the truth field by field.

Run it alone with ``python -m darkscope.darkweb.testmarket --port 8080``.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import random
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

SESSION_COOKIE = "market_session"
CATEGORIES = {"exploits": "Exploits", "malware": "Malware", "accounts": "Accounts",
              "services": "Services"}
WORDS = {
    "exploits": ["RCE", "0day", "Exchange", "VPN", "kernel", "LPE", "chain", "WordPress"],
    "malware": ["stealer", "loader", "RAT", "crypter", "ransomware", "botnet", "panel"],
    "accounts": ["PayPal", "bank", "Netflix", "RDP", "SSH", "fullz", "logs", "combo"],
    "services": ["DDoS", "hosting", "cashout", "escrow", "carding", "tutorial", "setup"],
}
PLACES = ["Worldwide", "Germany", "USA", "Netherlands", "UK", "Russia", "undeclared"]
VENDORS = ["darkdealer", "zer0cool", "phantom_ops", "n1ghtshade", "acidburn"]
PRICE_FORMATS = [("USD {:.2f}", "USD", 2), ("{:.4f} BTC", "BTC", 4), ("฿ {:.4f}", "BTC", 4),
                 ("$ {:,.2f}", "USD", 2), ("€{:.2f}", "EUR", 2), ("XMR {:.3f}", "XMR", 3)]
PER_PAGE = 5


@dataclass
class Market:
    """The market's own data: listings (the truth) and what the server was asked."""

    listings: list[dict[str, Any]]
    token: str
    slow_seconds: float = 2.0
    huge_bytes: int = 5_000_000
    requests: list[str] = field(default_factory=list)
    retired: set[int] = field(default_factory=set)
    user_agents: set[str] = field(default_factory=set)

    def live(self) -> list[dict[str, Any]]:
        """Listings on sale now (retired ones are gone from the market)."""
        return [row for row in self.listings if row["id"] not in self.retired]

    @classmethod
    def generate(cls, seed: int = 0, per_category: int = 12, slow_seconds: float = 2.0,
                 ) -> Market:
        rng = random.Random(seed)
        listings = []
        for slug, name in CATEGORIES.items():
            for _ in range(per_category):
                ident = len(listings) + 1
                words = rng.sample(WORDS[slug], 3)
                fmt, currency, digits = PRICE_FORMATS[ident % len(PRICE_FORMATS)]
                amount = round(rng.uniform(0.001, 0.5) if currency in ("BTC", "XMR")
                               else rng.uniform(5, 2500), digits)
                listings.append({
                    "id": ident, "slug": slug, "category": name,
                    "title": f"{words[0]} {words[1]} {words[2]} #{ident}",
                    "description": f"{' '.join(rng.choices(WORDS[slug], k=12))} "
                                   f"<b>escrow</b> & fast delivery, listing {ident}.",
                    "price_text": fmt.format(amount), "price": amount, "currency": currency,
                    "vendor": rng.choice(VENDORS), "ships_from": rng.choice(PLACES),
                    "ships_to": rng.choice(PLACES)})
        return cls(listings, token=f"{rng.getrandbits(64):016x}", slow_seconds=slow_seconds)

    def truth(self, base: str, market: str = "testmarket") -> list[dict[str, Any]]:
        """Listings as a perfect crawl of ``base`` extracts them (without crawl metadata)."""
        keys = ("title", "description", "price", "currency", "vendor", "category",
                "ships_from", "ships_to")
        rows = [{"market": market, "url": f"{base}/listing/{row['id']}",
                 **{k: row[k] for k in keys}} for row in self.live()]
        return sorted(rows, key=lambda r: r["url"])

    # -- pages ---------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._log_and_login], client_max_size=1024)
        app.add_routes([
            web.get("/", self.home), web.get("/login", self.login),
            web.get("/category/{slug}", self.category), web.get("/listing/{ident}", self.listing),
            web.get("/vendor/{name}", self.vendor), web.get("/loop/{step}", self.loop),
            web.get("/huge", self.huge), web.get("/slow", self.slow), web.get("/busy", self.busy),
            web.get("/hostile/{kind}", self.hostile), web.get("/files/{name}", self.binary),
        ])
        return app

    @web.middleware
    async def _log_and_login(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append(request.path_qs)
        self.user_agents.add(request.headers.get("User-Agent", ""))
        if request.path != "/login" and request.cookies.get(SESSION_COOKIE) != self.token:
            raise web.HTTPFound("/login")
        return await handler(request)

    @staticmethod
    def _page(title: str, body: str) -> web.Response:
        return web.Response(
            text=f"<!DOCTYPE html><html><head><title>{html.escape(title)}</title></head>"
                 f"<body><header><a href='/'>Market</a></header>{body}</body></html>",
            content_type="text/html", charset="utf-8")

    async def login(self, _: web.Request) -> web.Response:
        return self._page("Login", "<form method='post'><input name='user'><img src='/captcha.png'>"
                                   "<input name='captcha'></form>")

    async def home(self, _: web.Request) -> web.Response:
        links = "".join(f"<li><a class='category' href='/category/{slug}'>{name}</a></li>"
                        for slug, name in CATEGORIES.items())
        extras = ("<a href='/loop/a'>loop</a> <a href='/huge'>archive</a> <a href='/slow'>slow</a>"
                  " <a href='/missing/1'>gone</a> <a href='/hostile/nested'>n</a>"
                  " <a href='/hostile/badenc'>e</a> <a href='/hostile/unclosed'>u</a>"
                  " <a href='/files/tool'>tool</a> <a href='/listing/0'>broken</a>"
                  " <a href='/img/logo.png'>logo</a>"
                  " <a href='http://127.0.0.2:9/elsewhere'>mirror</a>")
        return self._page("Market", f"<nav><ul>{links}</ul></nav><p>{extras}</p>")

    async def category(self, request: web.Request) -> web.Response:
        slug = request.match_info["slug"]
        if slug not in CATEGORIES:
            raise web.HTTPNotFound()
        rows = [r for r in self.live() if r["slug"] == slug]
        pages = (len(rows) + PER_PAGE - 1) // PER_PAGE
        try:
            page = int(request.query.get("page", "1"))
        except ValueError:
            raise web.HTTPNotFound() from None
        if not 1 <= page <= pages:
            raise web.HTTPNotFound()
        items = "".join(
            f"<article class='listing'><h3><a class='listing-link' href='/listing/{r['id']}'>"
            f"{html.escape(r['title'])}</a></h3><span class='price'>{html.escape(r['price_text'])}"
            f"</span> by <a class='vendor' href='/vendor/{r['vendor']}'>{r['vendor']}</a>"
            "</article>" for r in rows[(page - 1) * PER_PAGE: page * PER_PAGE])
        nav = "".join(f"<a class='page' href='/category/{slug}?page={n}'>{n}</a> "
                      for n in range(1, pages + 1) if n != page)
        return self._page(CATEGORIES[slug], f"<main>{items}</main><div class='pages'>{nav}</div>")

    async def listing(self, request: web.Request) -> web.Response:
        ident = request.match_info["ident"]
        if ident == "0":  # hostile listing page: no title, thousands of nested tags
            return self._page("Broken", "<div class='item'>" + "<div><span>" * 20_000
                              + "<span class='price'>USD 1</span>")
        row = next((r for r in self.live() if str(r["id"]) == ident), None)
        if row is None:
            raise web.HTTPNotFound()
        title = html.escape(row["title"])
        if row["id"] % 7 == 0:  # hostile: script inside the title, unclosed tags around
            title = f"{title}<script>document.title='pwned'</script>"
        body = (
            f"<nav class='breadcrumb'><a href='/'>Home</a> <a href='/category/{row['slug']}'>"
            f"{row['category']}</a></nav><div class='item'><h1 class='title'>{title}</h1>"
            f"<div class='description'>{html.escape(row['description'])}</div>"
            f"<p>Price: <span class='price'>{html.escape(row['price_text'])}</span></p>"
            f"<p>Vendor: <a class='vendor' href='/vendor/{row['vendor']}'>{row['vendor']}</a></p>"
            f"<p>Ships from <span class='ships-from'>{row['ships_from']}</span> to "
            f"<span class='ships-to'>{row['ships_to']}</span></p>"
            "<img src='/img/product.jpg'><a href='/missing/img'>report</a></div>")
        return self._page(row["title"], body)

    async def vendor(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        rows = [r for r in self.live() if r["vendor"] == name]
        if not rows:
            raise web.HTTPNotFound()
        items = "".join(f"<li><a href='/listing/{r['id']}'>{html.escape(r['title'])}</a></li>"
                        for r in rows)
        return self._page(name, f"<h1>{name}</h1><ul class='offers'>{items}</ul>")

    async def loop(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop/b" if request.match_info["step"] == "a" else "/loop/a")

    async def huge(self, _: web.Request) -> web.Response:
        paragraph = "<p>" + "lorem ipsum dolor sit amet " * 40 + "</p>\n"
        return self._page("Archive", paragraph * (self.huge_bytes // len(paragraph)))

    async def slow(self, _: web.Request) -> web.Response:
        await asyncio.sleep(self.slow_seconds)
        return self._page("Slow", "<p>finally</p>")

    async def busy(self, _: web.Request) -> web.Response:
        """Always overloaded (503), like a market under DDoS; not linked from any page."""
        return web.Response(status=503, text="<h1>Service unavailable</h1>",
                            content_type="text/html", headers={"Retry-After": "1"})

    async def hostile(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        if kind == "nested":
            return self._page("Nested", "<div>" * 100_000 + "deep" + "</div>" * 100_000)
        if kind == "badenc":
            return web.Response(body=b"<html><body><h1>\xff\xfe bad \xc3\x28 bytes</h1>"
                                     b"\x00\x00</body></html>",
                                content_type="text/html", charset="utf-8")
        if kind == "unclosed":
            return self._page("Broken", "<table><tr><td><div><p><b><i>" * 500 + "<a href='/'")
        raise web.HTTPNotFound()

    async def binary(self, _: web.Request) -> web.Response:
        return web.Response(body=bytes(range(256)) * 4096, content_type="application/x-msdownload")


class MarketServer:
    """The market on 127.0.0.1 in a thread of its own, so a test's event loop stays free."""

    def __init__(self, market: Market, host: str = "127.0.0.1", port: int = 0) -> None:
        self.market = market
        self.host = host
        self.port = port
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> MarketServer:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("test market did not start")
        return self

    def __exit__(self, *_: object) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _serve(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        runner = web.AppRunner(self.market.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self.port = runner.addresses[0][1]
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-category", type=int, default=12)
    parser.add_argument("--slow-seconds", type=float, default=2.0)
    args = parser.parse_args()
    market = Market.generate(args.seed, args.per_category, args.slow_seconds)
    print(f"session cookie {SESSION_COOKIE}={market.token}", flush=True)
    web.run_app(market.app(), host="127.0.0.1", port=args.port, access_log=None,
                print=None)


if __name__ == "__main__":
    main()
