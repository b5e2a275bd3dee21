"""A market laid out unlike the test market, for the generic parser: index pages are tables
(title, seller, price), each product has a page of its own with a facts table, a sidebar of the
seller's other offers, and a description in several paragraphs."""

from __future__ import annotations

import html
from typing import Any

from aiohttp import web

from darkscope.darkweb.testmarket import Market

PER_PAGE = 4


class Bazaar:
    """The test market's listings, served in another layout (no login wall)."""

    def __init__(self, market: Market) -> None:
        self.market = market
        self.requests: list[str] = []
        for row in market.listings:
            words = row["description"].replace("<b>", "").replace("</b>", "")
            row["paragraphs"] = [
                f"{row['title']} is offered here with full support. {words}",
                f"Delivery happens within 24 hours after the escrow is funded. Listing "
                f"{row['id']} comes with a {row['id'] % 5 + 1}-day guarantee and updates.",
                "Contact the seller before ordering in bulk; prices change with the rate."]

    def truth(self, base: str) -> list[dict[str, Any]]:
        host = base.removeprefix("http://")
        rows = [{"market": host, "url": f"{base}/item/{row['id']}", "title": row["title"],
                 "description": " ".join(row["paragraphs"]), "price": row["price"],
                 "currency": row["currency"], "vendor": row["vendor"],
                 "category": row["category"], "ships_from": row["ships_from"],
                 "ships_to": row["ships_to"]} for row in self.market.listings]
        return sorted(rows, key=lambda r: r["url"])

    def app(self) -> web.Application:
        @web.middleware
        async def log(request: web.Request, handler: Any) -> web.StreamResponse:
            self.requests.append(request.path_qs)
            return await handler(request)

        app = web.Application(middlewares=[log])
        app.add_routes([web.get("/", self.home), web.get("/c/{slug}/{page}", self.index),
                        web.get("/item/{ident}", self.item), web.get("/p/{ident}", self.old_link)])
        return app

    @staticmethod
    def _page(title: str, body: str) -> web.Response:
        return web.Response(
            text=f"<html><head><title>{html.escape(title)} - Bazaar</title></head><body>"
                 f"<div id='top'><b>BAZAAR</b> | <a href='/'>all sections</a></div>{body}"
                 "<div id='bottom'>Escrow only. Prices in coin.</div></body></html>",
            content_type="text/html", charset="utf-8")

    def _rows(self, slug: str) -> list[dict[str, Any]]:
        return [r for r in self.market.listings if r["slug"] == slug]

    async def home(self, _: web.Request) -> web.Response:
        sections = sorted({(r["slug"], r["category"]) for r in self.market.listings})
        links = " ".join(f"<a href='/c/{slug}/1'>{name}</a>" for slug, name in sections)
        return self._page("Bazaar", f"<p>Sections: {links}</p>")

    async def index(self, request: web.Request) -> web.Response:
        rows = self._rows(request.match_info["slug"])
        page = int(request.match_info["page"])
        shown = rows[(page - 1) * PER_PAGE: page * PER_PAGE]
        if not shown:
            raise web.HTTPNotFound()
        # every third offer links through an old URL that redirects to the product page
        cells = "".join(
            f"<tr><td><a href='/{'p' if r['id'] % 3 == 0 else 'item'}/{r['id']}'>"
            f"{html.escape(r['title'])}</a></td><td>{r['vendor']}</td>"
            f"<td>{html.escape(r['price_text'])}</td></tr>" for r in shown)
        pages = " ".join(f"<a href='/c/{request.match_info['slug']}/{n}'>{n}</a>"
                         for n in range(1, (len(rows) + PER_PAGE - 1) // PER_PAGE + 1))
        return self._page(shown[0]["category"],
                          "<table><tr><th>Offer</th><th>Seller</th><th>Price</th></tr>"
                          f"{cells}</table><p>Pages: {pages}</p>")

    async def old_link(self, request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently(f"/item/{request.match_info['ident']}")

    async def item(self, request: web.Request) -> web.Response:
        row = next((r for r in self.market.listings
                    if str(r["id"]) == request.match_info["ident"]), None)
        if row is None:
            raise web.HTTPNotFound()
        others = "".join(f"<li><a href='/item/{r['id']}'>{html.escape(r['title'])}</a> "
                         f"{html.escape(r['price_text'])}</li>"
                         for r in self.market.listings
                         if r["vendor"] == row["vendor"] and r["id"] != row["id"])[:4000]
        paragraphs = "".join(f"<p>{html.escape(p)}</p>" for p in row["paragraphs"])
        facts = (f"<tr><th>Seller</th><td><a href='/u/{row['vendor']}'>{row['vendor']}</a>"
                 f"</td></tr><tr><th>Category</th><td>{row['category']}</td></tr>"
                 f"<tr><th>Price</th><td><strong>{html.escape(row['price_text'])}</strong>"
                 f"</td></tr><tr><th>Ships from</th><td>{row['ships_from']}</td></tr>"
                 f"<tr><th>Ships to</th><td>{row['ships_to']}</td></tr>")
        return self._page(row["title"],
                          f"<aside><h4>More from this seller</h4><ul>{others}</ul></aside>"
                          f"<section><h2>{html.escape(row['title'])}</h2><table>{facts}"
                          f"</table><h3>About this offer</h3>{paragraphs}</section>")
