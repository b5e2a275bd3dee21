"""Listings of a crawl directory, re-parsed from its WARC archive (no re-crawl needed)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lxml import etree

from darkscope.darkweb.archive import Response, read_responses
from darkscope.darkweb.crawler import STATE_FILE
from darkscope.darkweb.frontier import Frontier
from darkscope.darkweb.listings import make_listing
from darkscope.darkweb.parsers import (
    HTML_TYPES,
    ParseError,
    parse_html,
    parse_response,
    product_fields,
)
from darkscope.darkweb.prices import parse_price
from darkscope.darkweb.templates import Template
from darkscope.darkweb.urls import canonicalize, host_of
from darkscope.errors import InputFormatError, UsageError


def open_crawl(directory: str | Path) -> Frontier:
    state = Path(directory) / STATE_FILE
    if not state.exists():
        raise UsageError(f"{directory} is not a crawl directory ({STATE_FILE} is missing)")
    return Frontier(state)


def parse_generation(directory: str | Path, template: Template | None,
                     generation: int | None = None, progress: Any = None,
                     sources: dict[str, str] | None = None,
                     ) -> tuple[list[dict[str, Any]], list[ParseError]]:
    """Listings (sorted by URL, one per URL) and parse errors of one crawl generation.

    Only records the frontier committed are read, and pages whose body repeats an earlier
    page's (content de-duplication) are parsed once. ``sources``, if given, is filled with
    the URL of the page each listing was read from.

    Without a template, a listing found on an index page whose link leads to a page of its
    own (following redirects) takes that page's fields, which win over the index's: the
    index shows a title and a price, the product page the vendor and the full description.
    """
    directory = Path(directory)
    frontier = open_crawl(directory)
    try:
        generation = generation or frontier.generation
        committed = {name: frontier.committed_end(name)
                     for name in frontier.warc_files(generation)}
    finally:
        frontier.close()
    listings: dict[str, dict[str, Any]] = {}
    errors: list[ParseError] = []
    seen_bodies: set[str] = set()
    found_on: dict[str, str] = {} if sources is None else sources
    redirects: dict[str, str] = {}
    for response in _committed_responses(directory, committed, progress):
        if 300 <= response.status < 400 and response.header("location"):
            target = canonicalize(response.header("location") or "", response.url)
            if target is not None:
                redirects[response.url] = target
        sha = response.sha256
        if sha in seen_bodies:
            continue
        seen_bodies.add(sha)
        market = template.name if template is not None else host_of(response.url)
        found, failed = parse_response(response, template, market)
        errors.extend(failed)
        for listing in found:
            if listing["url"] not in listings:
                listings[listing["url"]] = listing
                found_on[listing["url"]] = response.url
    if template is None:
        errors += _merge_product_pages(directory, committed, listings, found_on, redirects)
    return [listings[url] for url in sorted(listings)], errors


_LOGIN_PATH = re.compile(r"log-?in|sign-?in|log-?on|auth|session", re.IGNORECASE)


def looks_like_login(response: Response) -> bool:
    """A page asking a person to log in: a form with a password or CAPTCHA field, or a form
    on a login-named path. (The crawl never fills such forms; it reports them.)"""
    if response.status != 200 or response.content_type not in HTML_TYPES:
        return False
    try:
        root = parse_html(response)
    except (etree.ParserError, ValueError):
        return False
    for form in root.iter("form"):
        fields = [(f.get("type") or "", f.get("name") or "", f.get("id") or "")
                  for f in form.iter("input")]
        if any(kind.lower() == "password" or "captcha" in (name + ident).lower()
               for kind, name, ident in fields):
            return True
        if fields and _LOGIN_PATH.search(urlsplit(response.url).path):
            return True
    return False


def login_walls(directory: str | Path, generation: int | None = None) -> list[tuple[str, str]]:
    """(page, login page) for each page of a crawl generation that redirected to a login
    form: what a crawl without a valid session cookie gets instead of listings."""
    directory = Path(directory)
    frontier = open_crawl(directory)
    try:
        committed = {name: frontier.committed_end(name)
                     for name in frontier.warc_files(generation or frontier.generation)}
    finally:
        frontier.close()
    redirects: dict[str, str] = {}
    logins: set[str] = set()
    for response in _committed_responses(directory, committed):
        if 300 <= response.status < 400 and response.header("location"):
            target = canonicalize(response.header("location") or "", response.url)
            if target is not None:
                redirects[response.url] = target
        elif looks_like_login(response):
            logins.add(response.url)
    return sorted((page, _follow(page, redirects)) for page in redirects
                  if _follow(page, redirects) in logins)


def _committed_responses(directory: Path, committed: dict[str, int],
                         progress: Any = None) -> Iterator[Response]:
    """Every archived response the frontier committed, in archive order."""
    for name, end in committed.items():
        path = directory / name
        if not path.exists():
            continue
        reached = 0
        for response, _, record_end in read_responses(path, verify=False):
            if record_end > end:
                break
            reached = record_end
            if progress is not None:
                progress.advance(1)
            yield response
        if reached < end:
            raise InputFormatError(path, "damaged WARC record: the crawl committed records up "
                                         f"to byte {end}", offset=reached)


def _merge_product_pages(directory: Path, committed: dict[str, int],
                         listings: dict[str, dict[str, Any]], found_on: dict[str, str],
                         redirects: dict[str, str]) -> list[ParseError]:
    """Merge each listing's own page into it (a second pass over the archive, so no page
    is held in memory meanwhile). A page that does not make a valid listing is reported
    and the index's listing kept."""
    wanted: dict[str, list[str]] = {}
    for url in listings:
        page = _follow(url, redirects)
        if page != found_on.get(url):
            wanted.setdefault(page, []).append(url)
    errors: list[ParseError] = []
    if not wanted:
        return errors
    for response in _committed_responses(directory, committed):
        urls = wanted.pop(response.url, None)
        if not urls or response.status != 200 or response.content_type not in HTML_TYPES:
            continue
        try:
            fields = product_fields(parse_html(response))
        except (etree.ParserError, ValueError) as exc:
            errors.append(ParseError(response.url, f"unparseable HTML: {exc}"))
            continue
        for url in urls:
            merged = {**_merged(listings[url], fields), "url": response.url}
            try:
                listing = make_listing(merged, market=listings[url]["market"],
                                       crawled_at=response.date, page_sha256=response.sha256)
            except ValueError as exc:
                errors.append(ParseError(response.url, f"product page of {url}: {exc}"))
                continue
            # one listing per product page: an old link that redirects to it is the same offer
            del listings[url]
            listings[response.url] = listing
            found_on.setdefault(response.url, found_on.pop(url, response.url))
    return errors


def _merged(listing: dict[str, Any], fields: dict[str, str]) -> dict[str, Any]:
    raw = {**listing, **{k: v for k, v in fields.items() if k != "price"}}
    price, currency = parse_price(fields.get("price"))
    if currency is not None:
        raw["price"], raw["currency"] = price, currency
    return raw


def _follow(url: str, redirects: dict[str, str], hops: int = 10) -> str:
    for _ in range(hops):
        if url not in redirects:
            break
        url = redirects[url]
    return url


def recheck(directory: str | Path, generation: int, sources: dict[str, str],
            max_depth: int) -> Callable[[str], bool]:
    """Whether generation ``generation`` looked again at a listing of the one before.

    A listing counts as checked when its own URL or the page it was read from was fetched
    again (200, 404 or 410), or, when neither was reached, the page that linked that page
    was fetched fine, had its links read, and no longer links it. A page that failed, timed
    out, or lay beyond the page budget or depth was not checked: its listings are not gone.
    """
    frontier = open_crawl(directory)
    try:
        before = frontier.page_states(generation - 1)
        now = frontier.page_states(generation)
    finally:
        frontier.close()

    def checked(listing_url: str) -> bool:
        page = sources.get(listing_url, listing_url)
        for url in (listing_url, page):
            if url in now:
                state = now[url]
                return state.state == "done" and state.status in (200, 404, 410)
        previous = before.get(page)
        parent = now.get(previous.parent) if previous and previous.parent else None
        return (parent is not None and parent.state == "done" and parent.status == 200
                and parent.duplicate_of is None and parent.depth < max_depth)

    return checked


def generations(directory: str | Path) -> int:
    frontier = open_crawl(directory)
    try:
        return frontier.generation
    finally:
        frontier.close()
