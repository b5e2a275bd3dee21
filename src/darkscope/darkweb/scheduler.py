"""Politeness: per-site queues, a per-site concurrency cap and a delay between request starts.

Like Scrapy's download slots: a worker takes the next URL of any site that is ready, so a slow
or rate-limited site never holds up the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections import defaultdict, deque

from darkscope.darkweb.frontier import Entry


class Scheduler:
    def __init__(self, per_site: int, delay: float, budget: int | None = None) -> None:
        """``budget``: how many more URLs may be handed out (None: no limit)."""
        self.budget = budget
        self.per_site = per_site
        self.delay = delay
        self._queues: dict[str, deque[Entry]] = defaultdict(deque)
        self._later: list[tuple[float, int, Entry]] = []  # retries waiting out their backoff
        self._order = itertools.count()
        self._active: dict[str, int] = defaultdict(int)
        self._next_start: dict[str, float] = defaultdict(float)
        self._in_flight = 0
        self._queued = 0
        self._changed = asyncio.Event()

    def push(self, entry: Entry, retry: bool = False) -> None:
        """Queue ``entry``; a ``retry`` gives back the budget its failed attempt took."""
        if retry and self.budget is not None:
            self.budget += 1
        if entry.not_before > 0:
            heapq.heappush(self._later, (entry.not_before, next(self._order), entry))
        else:
            self._queues[entry.host].append(entry)
        self._queued += 1
        self._changed.set()

    async def get(self) -> Entry | None:
        """The next URL whose site is ready; None once nothing is queued or in flight.

        A retry waits in a heap until its backoff ends, so it never holds up its site's queue.
        """
        loop = asyncio.get_running_loop()
        while True:
            if self.budget == 0 or (self._queued == 0 and self._in_flight == 0):
                self._changed.set()  # wake the other workers so they see it too
                return None
            now = loop.time()
            while self._later and self._later[0][0] <= now:
                entry = heapq.heappop(self._later)[2]
                self._queues[entry.host].append(entry)
            wait = self._later[0][0] - now if self._later else None
            for site, queue in self._queues.items():  # only sites with queued URLs
                if self._active[site] >= self.per_site:
                    continue
                ready = self._next_start[site]
                if ready <= now:
                    entry = queue.popleft()
                    if not queue:  # a finished site costs later calls nothing
                        del self._queues[site]
                    self._queued -= 1
                    self._active[site] += 1
                    self._in_flight += 1
                    self._next_start[site] = now + self.delay
                    if self.budget is not None:
                        self.budget -= 1
                    return entry
                wait = ready - now if wait is None else min(wait, ready - now)
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), wait)

    def release(self, entry: Entry) -> None:
        self._active[entry.host] -= 1
        self._in_flight -= 1
        self._changed.set()
