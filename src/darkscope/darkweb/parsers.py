"""The parsing part: listings out of archived HTML, by template or by a generic fallback.

lxml (libxml2) parses: it recovers from malformed markup and caps nesting depth (255), so a
page of 100,000 nested tags parses in milliseconds; selectolax/lexbor took 21 s on the same page.
Every failure becomes a :class:`ParseError` with its URL; nothing here raises for bad HTML.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import lxml.html
from lxml import etree
from lxml.cssselect import CSSSelector

from darkscope.darkweb.archive import Response
from darkscope.darkweb.listings import make_listing
from darkscope.darkweb.prices import find_price
from darkscope.darkweb.templates import FieldSpec, PageRule, Template
from darkscope.darkweb.urls import canonicalize

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", ""})
_META_CHARSET = re.compile(rb"<meta[^>]+charset=[\"']?([A-Za-z0-9_.:-]+)", re.IGNORECASE)
_SPACE = re.compile(r"\s+")
_PARSER = lxml.html.HTMLParser(encoding="utf-8", remove_comments=True, remove_pis=True,
                               recover=True)


@dataclass
class ParseError:
    url: str
    error: str


@lru_cache(maxsize=1024)
def selector(css: str) -> CSSSelector:
    return CSSSelector(css)


def decode(response: Response) -> str:
    """Body as text: header charset, else ``<meta charset>``, else UTF-8; bad bytes replaced."""
    charset = response.charset
    if charset is None:
        match = _META_CHARSET.search(response.body[:4096])
        charset = match.group(1).decode("ascii") if match else "utf-8"
    try:
        return response.body.decode(charset, errors="replace")
    except LookupError:
        return response.body.decode("utf-8", errors="replace")


def parse_html(response: Response) -> lxml.html.HtmlElement:
    """The document tree without scripts and styles (their text is never listing text)."""
    text = decode(response)
    root = lxml.html.document_fromstring(text.encode("utf-8", errors="replace"), parser=_PARSER)
    etree.strip_elements(root, "script", "style", "noscript", "template", with_tail=False)
    return root


def clean_text(node: Any) -> str:
    return _SPACE.sub(" ", node.text_content()).strip()


def extract_links(root: lxml.html.HtmlElement, base: str, selectors: list[str]) -> list[str]:
    """Canonical http(s) links of ``a[href]`` nodes (only those under ``selectors`` if given)."""
    nodes = ([a for css in selectors for a in selector(css)(root)] if selectors
             else root.iter("a"))
    links = []
    for node in nodes:
        href = node.get("href")
        if href:
            url = canonicalize(href, base)
            if url is not None:
                links.append(url)
    return links


def _field(node: Any, spec: FieldSpec, base: str) -> str | None:
    found = selector(spec.selector)(node)
    if not found:
        return None
    if spec.attribute is None:
        return clean_text(found[0]) or None
    value = found[0].get(spec.attribute)
    if value is None:
        return None
    return canonicalize(value, base) if spec.attribute in ("href", "src") else value.strip()


def template_records(root: Any, rule: PageRule, page_url: str) -> Iterator[tuple[dict, Any]]:
    """Raw field values of every item node matched by ``rule``. A whole-page listing
    defaults to the page URL; an item without its own URL is a parse error (it would
    otherwise share the page URL with its siblings and all but one would be lost)."""
    whole_page = rule.item == "html"
    items = [root] if whole_page else selector(rule.item)(root)
    for node in items:
        raw = {name: _field(node, spec, page_url) for name, spec in rule.fields.items()}
        if whole_page and not raw.get("url"):
            raw["url"] = page_url
        yield raw, node


def generic_records(root: Any, page_url: str) -> Iterator[tuple[dict, Any]]:
    """Listings without a template: the largest group of sibling blocks that look alike
    (same tag and class) and each hold a link and a price (two suffice: a last page)."""
    groups: dict[tuple[int, str, str], list[Any]] = defaultdict(list)
    for node in root.iter(etree.Element):
        parent = node.getparent()
        if parent is not None:
            groups[(id(parent), node.tag, node.get("class", ""))].append(node)
    best: list[Any] = []
    for nodes in groups.values():
        if len(nodes) < 2 or len(nodes) <= len(best):
            continue
        priced = [n for n in nodes if n.find(".//a[@href]") is not None
                  and _price_text(n) is not None]
        if len(priced) >= max(2, len(nodes) // 2) and len(priced) > len(best):
            best = priced
    for node in best:
        link = node.find(".//a[@href]")
        heading = next(iter(node.xpath(".//h1|.//h2|.//h3|.//h4")), None)
        title = clean_text(heading if heading is not None else link)
        text = _SPACE.sub(" ", " ".join(node.itertext())).strip()
        yield {"title": title, "url": canonicalize(link.get("href"), page_url) or page_url,
               "description": text, "price": _price_text(node)}, node


def _price_text(node: Any) -> str | None:
    """The first text piece holding a price (pieces of separate elements are not merged,
    so "#10" in a title and "0.5 BTC" beside it do not read as "10.5 BTC")."""
    return next((piece for piece in node.itertext() if find_price(piece)), None)


def parse_response(response: Response, template: Template | None, market: str,
                   ) -> tuple[list[dict[str, Any]], list[ParseError]]:
    """Listings and parse errors of one archived response."""
    if response.status != 200 or response.content_type not in HTML_TYPES:
        return [], []
    try:
        root = parse_html(response)
    except (etree.ParserError, ValueError) as exc:
        return [], [ParseError(response.url, f"unparseable HTML: {exc}")]
    parts = urlsplit(response.url)
    path = parts.path + ("?" + parts.query if parts.query else "")
    if template is not None:
        rule = template.rule_for(path)
        if rule is None:
            return [], []
        raws = template_records(root, rule, response.url)
    else:
        raws = generic_records(root, response.url)
    listings, errors = [], []
    for raw, node in raws:
        try:
            if template is not None and template.hook is not None:
                raw = template.hook(raw, node)
                if raw is None:
                    continue
            listings.append(make_listing(raw, market=market, crawled_at=response.date,
                                         page_sha256=response.sha256))
        except ValueError as exc:
            errors.append(ParseError(response.url, str(exc)))
        except Exception as exc:  # a template hook's bug must not stop the crawl
            errors.append(ParseError(response.url, f"hook failed: {type(exc).__name__}: {exc}"))
    return listings, errors
