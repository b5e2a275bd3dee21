"""The crawler: frontier → scheduler → fetcher → WARC archive → links back into the frontier.

Each response is appended to the WARC first and then committed to the frontier in one SQLite
transaction with the links it yields. After ``kill -9`` the next run replays the WARC records
written after the last commit, so the archived page counts as fetched and is not requested
again; only requests still in flight when the process died are sent again.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from darkscope.darkweb.archive import Response, WarcArchive, read_responses
from darkscope.darkweb.connection import Connection, ProxyLeakRefused
from darkscope.darkweb.cookies import Cookie, cookie_jar
from darkscope.darkweb.fetcher import (
    REDIRECT_CODES,
    RETRY_CODES,
    Limits,
    NotText,
    TransientError,
    fetch,
    is_text,
)
from darkscope.darkweb.frontier import Entry, Frontier, Outcome
from darkscope.darkweb.parsers import HTML_TYPES, extract_links, parse_html
from darkscope.darkweb.scheduler import Scheduler
from darkscope.darkweb.templates import Template
from darkscope.darkweb.urls import Scope, canonicalize, host_of, looks_binary
from darkscope.errors import UsageError

STATE_FILE = "state.sqlite"
# Test hook for crash recovery: the process exits right after this many WARC writes, before
# the commit of the last one (the window a kill can hit). Unset in normal use.
_CRASH_AFTER_WRITES = int(os.environ.get("DARKSCOPE_TEST_CRASH_AFTER_WARC_WRITES", "0") or 0)
CRASH_EXIT_CODE = 75
# Tor Browser's User-Agent: the most common one on onion services (aiohttp's own names it).
DEFAULT_USER_AGENT = "Mozilla/5.0 (Windows NT 10.0; rv:128.0) Gecko/20100101 Firefox/128.0"
WARC_DIR = "warc"


@dataclass
class CrawlConfig:
    """Everything that shapes a crawl; stored with the state so ``--resume`` repeats it."""

    seeds: list[str]
    concurrency: int = 16
    per_site: int = 4
    delay: float = 0.0
    timeout: float = 60.0
    connect_timeout: float = 30.0
    retries: int = 3
    backoff: float = 2.0
    max_bytes: int = 2_000_000
    max_depth: int = 10
    max_pages: int = 0
    max_redirects: int = 5
    new_circuit_after: int = 5
    allow_hosts: list[str] = field(default_factory=list)
    allow_paths: list[str] = field(default_factory=list)
    deny_paths: list[str] = field(default_factory=list)
    user_agent: str = DEFAULT_USER_AGENT

    def scope(self) -> Scope:
        try:
            return Scope({canonical_host(h) for h in self.allow_hosts}
                         or {host_of(s) for s in self.seeds},
                         [re.compile(p) for p in self.allow_paths],
                         [re.compile(p) for p in self.deny_paths])
        except re.error as exc:
            raise UsageError(f"bad path pattern: {exc}") from None

    def limits(self) -> Limits:
        return Limits(self.timeout, self.connect_timeout, self.max_bytes)


@dataclass
class CrawlStats:
    fetched: int = 0
    replayed: int = 0
    failed: int = 0
    skipped: int = 0
    retried: int = 0
    new_circuits: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Crawler:
    """One crawl directory: ``state.sqlite`` (frontier) and ``warc/*.warc.gz`` (archive)."""

    def __init__(self, directory: str | Path, config: CrawlConfig, connection: Connection,
                 template: Template | None = None, cookies: list[Cookie] | None = None,
                 tor_control: Any = None, on_page: Any = None) -> None:
        self.directory = Path(directory)
        self.config = config
        self.connection = connection
        self.template = template
        self.cookies = cookies or []
        self.tor_control = tor_control
        self.on_page = on_page
        self.scope = config.scope()
        self.limits = config.limits()
        self.stats = CrawlStats()
        self._failures: dict[str, int] = defaultdict(int)
        self._writes = 0

    # -- entry points ----------------------------------------------------------------------
    @staticmethod
    def prepare(directory: str | Path, config: CrawlConfig, mode: str) -> Frontier:
        """Open the state for ``mode`` ``new`` (fresh directory), ``resume`` or ``recrawl``."""
        directory = Path(directory)
        state = directory / STATE_FILE
        if mode == "new" and state.exists():
            raise UsageError(f"{directory} already holds a crawl; pass --resume to continue it "
                             "or --recrawl to crawl again and record changes")
        if mode != "new" and not state.exists():
            raise UsageError(f"{directory} holds no crawl to {mode} ({state} is missing)")
        (directory / WARC_DIR).mkdir(parents=True, exist_ok=True)
        frontier = Frontier(state)
        if mode == "resume":
            return frontier
        frontier.set_meta("config", json.dumps(asdict(config)))
        frontier.start_generation(canonical_seeds(config.seeds))
        return frontier

    async def run(self, frontier: Frontier) -> CrawlStats:
        started = time.monotonic()
        self.frontier = frontier
        self.jar = cookie_jar(self.cookies)
        self._pending = {e.url: e for e in frontier.pending()}
        self._live = False
        self._replay()
        done = sum(n for s, n in frontier.counts().items() if s != "pending")
        budget = max(0, self.config.max_pages - done) if self.config.max_pages else None
        self.scheduler = Scheduler(self.config.per_site, self.config.delay, budget)
        self._live = True
        name = f"gen{frontier.generation:04d}-{time.strftime('%Y%m%dT%H%M%S')}-" \
               f"{random.randrange(16**6):06x}.warc.gz"
        self.warc_name = f"{WARC_DIR}/{name}"
        self.archive = WarcArchive(self.directory / self.warc_name)
        frontier.register_warc(self.warc_name)
        for entry in self._pending.values():
            self.scheduler.push(entry)
        try:
            await self.connection.probe()
            workers = [asyncio.create_task(self._worker())
                       for _ in range(max(1, self.config.concurrency))]
            await asyncio.gather(*workers)
        finally:
            self.archive.close()
            await self.connection.close()
        self.stats.seconds = time.monotonic() - started
        return self.stats

    # -- crash recovery ------------------------------------------------------------------
    def _replay(self) -> None:
        """Commit responses a killed run archived but did not record; cut any partial record."""
        for name in self.frontier.warc_files(self.frontier.generation):
            path = self.directory / name
            if not path.exists():
                continue
            end = self.frontier.committed_end(name)
            for response, offset, record_end in read_responses(path, end):
                entry = self._pending.get(response.url)
                if entry is not None:
                    self._commit_archived(entry, response, name, offset, record_end)
                    self.stats.replayed += 1
                end = record_end
            with open(path, "r+b") as stream:
                stream.truncate(end)

    # -- the work loop ---------------------------------------------------------------------
    async def _worker(self) -> None:
        while (entry := await self.scheduler.get()) is not None:
            try:
                await self._process(entry)
            finally:
                self.scheduler.release(entry)

    async def _process(self, entry: Entry) -> None:
        try:
            self.connection.check(entry.url)
        except ProxyLeakRefused as exc:
            self.stats.failed += 1
            self._finish(entry, Outcome(entry.url, "failed", error=str(exc)), [])
            return
        if looks_binary(entry.url):
            self.stats.skipped += 1
            self._finish(entry, Outcome(entry.url, "skipped", error="binary by suffix"), [])
            return
        site = entry.host
        try:
            async with self.connection.using(site, self.jar) as session:
                response = await fetch(session, entry.url, self.limits)
        except NotText as exc:
            self.stats.skipped += 1
            self._archive(entry, exc.response)
            return
        except TransientError as exc:
            await self._transient(entry, str(exc), exc.response)
            return
        self._failures[site] = 0
        self._archive(entry, response)
        self.stats.fetched += 1
        if self.on_page is not None:
            self.on_page(response)

    def _archive(self, entry: Entry, response: Response) -> None:
        """Every response goes to the WARC before its outcome is committed."""
        offset, end = self.archive.write(response)
        self._writes += 1
        if self._writes == _CRASH_AFTER_WRITES:  # test hook: die in the crash window
            os._exit(CRASH_EXIT_CODE)
        self._commit_archived(entry, response, self.warc_name, offset, end)

    def _commit_archived(self, entry: Entry, response: Response, warc_name: str, offset: int,
                         end: int) -> None:
        """Commit an archived response: a final 5xx/429 fails the URL, a non-text body
        (archived without it) skips it, anything else is a page."""
        where = {"warc_file": warc_name, "warc_offset": offset, "warc_end": end}
        if response.status in RETRY_CODES:
            self._finish(entry, Outcome(entry.url, "failed", response.status,
                                        error=f"HTTP {response.status}", **where), [])
        elif response.status not in REDIRECT_CODES and not is_text(response.content_type):
            self._finish(entry, Outcome(entry.url, "skipped", response.status,
                                        error=f"not text: {response.content_type}", **where), [])
        else:
            self._record(entry, response, warc_name, offset, end)

    async def _transient(self, entry: Entry, error: str, response: Response | None) -> None:
        site = entry.host
        self._failures[site] += 1
        if self._failures[site] >= self.config.new_circuit_after:
            self._failures[site] = 0
            self.stats.new_circuits += 1
            await self.connection.new_circuit(site)
            if self.tor_control is not None:  # stem blocks on the control socket
                await asyncio.to_thread(self.tor_control.new_identity)
        entry.attempts += 1
        if entry.attempts > self.config.retries:
            self.stats.failed += 1
            if response is not None:
                self._archive(entry, response)
            else:
                self._finish(entry, Outcome(entry.url, "failed", error=error), [])
            return
        self.stats.retried += 1
        self.frontier.retry_later(entry.url, error)
        delay = self.config.backoff * 2 ** (entry.attempts - 1) * random.uniform(0.75, 1.25)
        entry.not_before = asyncio.get_running_loop().time() + delay
        self.scheduler.push(entry, retry=True)

    def _record(self, entry: Entry, response: Response, warc_name: str, offset: int,
                end: int) -> None:
        """Commit an archived response and the URLs it leads to."""
        outcome = Outcome(entry.url, "done", response.status, response.sha256,
                          warc_file=warc_name, warc_offset=offset, warc_end=end)
        discovered: list[Entry] = []
        if response.status in REDIRECT_CODES:
            discovered, outcome.error = self._redirect(entry, response)
        else:
            outcome.duplicate_of = self.frontier.content_owner(outcome.sha256 or "")
            if (outcome.duplicate_of is None and response.status == 200
                    and response.content_type in HTML_TYPES
                    and entry.depth < self.config.max_depth):
                discovered = self._links(entry, response)
        self._finish(entry, outcome, discovered)

    def _redirect(self, entry: Entry, response: Response) -> tuple[list[Entry], str | None]:
        chain = [*entry.redirect_chain, entry.url]
        target = canonicalize(response.header("location") or "", entry.url)
        if target is None:
            return [], "redirect to a non-http(s) location"
        if target in chain:
            return [], "redirect loop: " + " -> ".join([*chain, target])
        if len(chain) > self.config.max_redirects:
            return [], f"more than {self.config.max_redirects} redirects"
        if not self.scope.allows(target):
            return [], f"redirect out of scope: {target}"
        return [Entry(target, entry.depth, redirect_chain=chain, parent=entry.url)], None

    def _links(self, entry: Entry, response: Response) -> list[Entry]:
        try:
            root = parse_html(response)
        except Exception:  # hostile HTML: archived, parse errors reported by `parse`
            return []
        follow = self.template.follow if self.template is not None else []
        links = dict.fromkeys(extract_links(root, response.url, follow))
        return [Entry(url, entry.depth + 1, parent=entry.url) for url in links
                if self.scope.allows(url) and not looks_binary(url)]

    def _finish(self, entry: Entry, outcome: Outcome, discovered: list[Entry]) -> None:
        for new in self.frontier.commit(outcome, discovered):
            self._pending[new.url] = new
            if self._live:
                self.scheduler.push(new)
        self._pending.pop(entry.url, None)


def canonical_host(value: str) -> str:
    """``host[:port]`` as canonical URLs spell it: ``M.onion`` and ``m.onion:80`` are
    ``m.onion`` (a value with a scheme keeps that scheme's default port)."""
    url = canonicalize(value if "://" in value else f"http://{value}/")
    if url is None:
        raise UsageError(f"--allow-host {value!r} is not a host[:port]")
    return host_of(url)


def canonical_seeds(seeds: list[str]) -> list[str]:
    urls = []
    for seed in seeds:
        url = canonicalize(seed)
        if url is None:
            raise UsageError(f"seed {seed!r} is not an http(s) URL")
        urls.append(url)
    return urls
