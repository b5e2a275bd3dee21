"""Listings of a crawl directory, re-parsed from its WARC archive (no re-crawl needed)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from darkscope.darkweb.archive import read_responses
from darkscope.darkweb.crawler import STATE_FILE
from darkscope.darkweb.frontier import Frontier
from darkscope.darkweb.parsers import ParseError, parse_response
from darkscope.darkweb.templates import Template
from darkscope.darkweb.urls import host_of
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
                    if sources is not None:
                        sources[listing["url"]] = response.url
        if reached < end:
            raise InputFormatError(path, "damaged WARC record: the crawl committed records up "
                                         f"to byte {end}", offset=reached)
    return [listings[url] for url in sorted(listings)], errors


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
