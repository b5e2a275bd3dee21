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
from darkscope.darkweb.listings import MAX_TEXT as MAX_DESCRIPTION
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


# Labels markets put before a product's fields ("Sold by: x", <th>Seller</th><td>x</td>).
_LABELS = {
    "vendor": ("vendor", "seller", "sold by", "merchant", "offered by", "supplier"),
    "category": ("category", "categories"),
    "ships_from": ("ships from", "shipping from", "ship from", "origin"),
    "ships_to": ("ships to", "shipping to", "ship to", "delivers to", "destination"),
}
_LABEL = re.compile(r"(?P<label>" + "|".join(
    sorted((re.escape(label) for labels in _LABELS.values() for label in labels),
           key=len, reverse=True)) + r")(?P<colon>\s*[:：])?\s*(?P<rest>.*)",
    re.IGNORECASE | re.DOTALL)
_FIELD_OF_LABEL = {label: name for name, labels in _LABELS.items() for label in labels}
# class, id or itemprop tokens that name a field outright
_HINTS = {"vendor": "vendor", "seller": "vendor", "merchant": "vendor",
          "category": "category", "description": "description", "desc": "description",
          "product-description": "description", "ships-from": "ships_from",
          "ship-from": "ships_from", "origin": "ships_from", "ships-to": "ships_to",
          "ship-to": "ships_to", "destination": "ships_to"}
_BLOCKS = frozenset({"div", "section", "article", "main", "p", "td", "th", "li", "ul", "ol",
                     "dl", "dt", "dd", "table", "tr", "tbody", "blockquote", "pre", "h1", "h2",
                     "h3", "h4", "h5", "h6", "header", "footer", "nav", "aside", "form",
                     "figure", "body"})
_CHROME = frozenset({"nav", "header", "footer", "aside", "form"})
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_MAX_VALUE = 200
_MIN_DESCRIPTION = 40


def _label(text: str) -> re.Match[str] | None:
    """``Seller: x``, ``Seller`` alone, or ``Sold by x`` (a label ending in by/from/to needs
    no colon); not a sentence that merely starts with such a word."""
    match = _LABEL.fullmatch(text)
    if match is None or not match["rest"] or match["colon"]:
        return match
    return match if match["label"].lower().endswith((" by", " from", " to")) else None


def product_fields(root: Any) -> dict[str, str]:
    """Fields of a page about one product, without a template: what the generic parser merges
    into a listing found on an index page that links here.

    Title: the first ``h1`` (else ``h2``). Price: the first price after the title. Vendor,
    category and shipping: an element whose class, id or ``itemprop`` names the field, else
    the text after a label (``Seller``, ``Sold by:``, ``Ships from``...), else for the category
    the last link of a breadcrumb. Description: such a named element, else the block with
    the most running text (with its paragraphs), outside navigation and sidebars.
    """
    fields: dict[str, str] = {}
    heading = next(iter(root.xpath("(//h1)[1] | (//h2)[1]")), None)
    if heading is not None and clean_text(heading):
        fields["title"] = clean_text(heading)
    pieces = [piece for piece in (_SPACE.sub(" ", t).strip() for t in _body_text(root, heading))
              if piece]
    price = next((piece for piece in pieces if find_price(piece)), None)
    if price is not None:
        fields["price"] = price
    for name, value in _hinted(root).items():
        fields.setdefault(name, value)
    for name, value in _labelled(pieces).items():
        fields.setdefault(name, value)
    if "category" not in fields:
        crumbs = root.xpath("//*[contains(@class, 'breadcrumb') or "
                            "contains(@aria-label, 'readcrumb')]//a")
        if len(crumbs) >= 2 and clean_text(crumbs[-1]):
            fields["category"] = clean_text(crumbs[-1])[:_MAX_VALUE]
    if "description" not in fields:
        description = _running_text(root)
        if description:
            fields["description"] = description
    return fields


def _body_text(root: Any, heading: Any) -> list[str]:
    """Text pieces from the title on (all of the body when there is no title)."""
    if heading is None:
        return list(root.itertext())
    pieces, started = [], False
    for node in root.iter():
        if node is heading:
            started = True
        if started:
            if isinstance(node.tag, str):
                pieces.append(node.text or "")
            pieces.append(node.tail or "")
    return pieces


def _hinted(root: Any) -> dict[str, str]:
    found: dict[str, str] = {}
    for node in root.iter(etree.Element):
        tokens = [*node.get("class", "").lower().split(), node.get("id", "").lower(),
                  node.get("itemprop", "").lower()]
        for token in tokens:
            name = _HINTS.get(token)
            if name is None or name in found:
                continue
            text = clean_text(node)
            match = _label(text)
            if match and _FIELD_OF_LABEL.get(match["label"].lower()) == name:
                text = match["rest"].strip()  # <span class=seller>Seller: x</span>
            limit = MAX_DESCRIPTION if name == "description" else _MAX_VALUE
            if text and len(text) <= limit:
                found[name] = text
    return found


def _labelled(pieces: list[str]) -> dict[str, str]:
    """``label value`` pairs in document order: the value in the label's own piece
    ("Seller: x") or in the next one (<dt>Seller</dt><dd>x</dd>)."""
    found: dict[str, str] = {}
    for i, piece in enumerate(pieces):
        match = _label(piece)
        if not match:
            continue
        name = _FIELD_OF_LABEL[match["label"].lower()]
        value = match["rest"].strip()
        following = pieces[i + 1] if i + 1 < len(pieces) else ""
        if not value and not _label(following):
            value = following
        if name == "ships_from" and i + 3 < len(pieces) and pieces[i + 2].lower() == "to":
            found.setdefault("ships_to", pieces[i + 3][:_MAX_VALUE])  # "Ships from X to Y"
        if value and len(value) <= _MAX_VALUE and name not in found:
            found[name] = value
    return found


def _own_text(node: Any) -> str:
    """A block's text without that of the blocks inside it."""
    parts = [node.text or ""]
    for child in node:
        if isinstance(child.tag, str) and child.tag not in _BLOCKS:
            parts.append(child.text_content())
        parts.append(child.tail or "")
    return _SPACE.sub(" ", "".join(parts)).strip()


def _running_text(root: Any) -> str | None:
    """The block with the most prose: its own text plus its paragraphs, leaving out
    navigation, sidebars, headings and label/price lines."""
    prose: dict[Any, str] = {}  # each block's own text once, "" unless it reads as prose

    def text_of(node: Any) -> str:
        if node not in prose:
            text = _own_text(node)
            # "Price: 0.5 BTC" or "Seller: x" is a field line, not prose
            field_line = _label(text) or (len(text) < 80 and find_price(text))
            prose[node] = "" if field_line else text
        return prose[node]

    best, best_length = "", 0
    stack = [root]
    while stack:  # depth first, never entering navigation or sidebars
        node = stack.pop()
        stack.extend(child for child in node
                     if isinstance(child.tag, str) and child.tag not in _CHROME)
        if node.tag not in _BLOCKS or node.tag in _HEADINGS:
            continue
        texts = [text_of(node), *(text_of(child) for child in node if child.tag == "p")]
        length = sum(len(t) for t in texts)
        if length > best_length:
            best, best_length = " ".join(t for t in texts if t), length
    return best if best_length >= _MIN_DESCRIPTION else None


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
