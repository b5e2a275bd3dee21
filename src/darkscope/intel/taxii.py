"""A read-only TAXII 2.1 API root over darkscope's findings, served by ``darkscope serve``.

One API root (``/taxii2/darkscope/``) with a collection per finding type: ``scanners``,
``indicators``, ``rules`` and ``victims`` (the groups of
:func:`darkscope.intel.stix.collections`). The objects are built from the data directory's
findings again whenever its files change, with the built-in allowlist applied and victims as
/24s unless the operator shares more; dark web topics are never served.

TAXII clients poll with ``added_after`` and page with ``next``, so ``date_added`` must be when
this server first had an object version, and must stay so across restarts: it is kept in a
table of the review store (``taxii_added``), which forgets versions that are gone. Every
object has a single version here (the newest, ``modified`` = its last sighting), so
``match[version]`` first, last and all agree. ``next`` is the (date added, id) of the last
object sent: objects added while a client pages come after it, never in between.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from darkscope.catalog import Catalog
from darkscope.errors import UsageError
from darkscope.intel.allowlist import Allowlist
from darkscope.intel.findings import ExpertLabel, load
from darkscope.intel.stix import COLLECTIONS, SCANNER_DECAY, collections

TAXII = "application/taxii+json;version=2.1"
STIX = "application/stix+json;version=2.1"
ROOT = "darkscope"
PAGE = 1000              # objects per page at most (a client may ask for fewer)
_NAMESPACE = uuid.UUID("9b0e6c2a-4d1f-5e8b-8a37-746178693231")  # darkscope TAXII
_ABOUT = {
    "scanners": "Sources of unsolicited traffic to the telescope: addresses, infrastructure "
                "(reconnaissance or botnet), observed-data, sightings, the tools and malware "
                "they were fingerprinted as, and experts' opinions.",
    "indicators": "Indicators of the scanning sources a labelling rule, an expert or a tool "
                  "fingerprint confirmed, valid for a decay after their last sighting.",
    "rules": "Scanner fingerprints mined from the telescope's traffic (TCP window, ToS and "
             "destination ports that many hosts carried together) as indicators with their "
             "sightings, and the tool or botnet most of their hosts were fingerprinted as.",
    "victims": "Hosts whose replies to spoofed DDoS floods reached the telescope, with the "
               "estimated attack rate (their /24 unless the operator shares more).",
}


class TaxiiError(Exception):
    """A TAXII error message resource, sent with ``status``."""

    def __init__(self, status: int, title: str, description: str = "") -> None:
        super().__init__(title)
        self.status, self.title, self.description = status, title, description

    def resource(self) -> dict[str, str]:
        return {"title": self.title, "description": self.description,
                "http_status": str(self.status)}


@dataclass(frozen=True)
class Entry:
    added_us: int
    id: str
    version: str
    version_us: int       # the version as a time, to match ``match[version]`` timestamps
    type: str
    object: dict[str, Any]

    @property
    def key(self) -> tuple[int, str]:
        return self.added_us, self.id


@dataclass
class Collection:
    id: str
    name: str
    entries: list[Entry] = field(default_factory=list)
    by_id: dict[str, Entry] = field(default_factory=dict)

    def info(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.name, "description": _ABOUT[self.name],
                "can_read": True, "can_write": False, "media_types": [STIX]}


@dataclass(frozen=True)
class FeedSettings:
    data: Path
    added_db: Path                 # the review store: keeps each object version's date_added
    operator: str = "darkscope telescope"
    victims: str = "prefix24"      # full, prefix24 or none
    decay: timedelta = SCANNER_DECAY
    allowlists: tuple[Path, ...] = ()
    labels: Callable[[], list[ExpertLabel]] | None = None  # experts' labels, when shared


class Feed:
    """The collections, rebuilt when the data directory's files change (at most every few
    seconds, one rebuild at a time; requests meanwhile get the previous build)."""

    def __init__(self, settings: FeedSettings) -> None:
        self.settings = settings
        self.allowlist = Allowlist.load(list(settings.allowlists))
        self._catalog = Catalog(settings.data)
        self._built_version = -1
        self._lock = threading.Lock()
        self.collections = {name: Collection(str(uuid.uuid5(_NAMESPACE, name)), name)
                            for name in COLLECTIONS}

    def collection(self, collection_id: str) -> Collection:
        self.refresh()
        for found in self.collections.values():
            if found.id == collection_id:
                return found
        raise TaxiiError(404, "no such collection", collection_id)

    def refresh(self) -> None:
        self._catalog.refresh()
        if self._catalog.version == self._built_version or not self._lock.acquire(
                blocking=self._built_version < 0):
            return
        try:
            version = self._catalog.version
            groups = self._objects()
            with _AddedLog(self.settings.added_db) as log:
                for name, served in self.collections.items():   # never the dark web's
                    self.collections[name] = _collection(served, groups[name], log)
            self._built_version = version
        finally:
            self._lock.release()

    def _objects(self) -> dict[str, list[dict[str, Any]]]:
        settings = self.settings
        try:
            findings = load([settings.data])
        except UsageError:  # no verdicts, victims or hosts yet: empty collections
            return {name: [] for name in COLLECTIONS}
        findings.sources, _ = self.allowlist.leave_out(findings.sources)
        if settings.victims == "none":
            findings.victims = []
        if settings.labels is not None:
            findings.labels = settings.labels()
        return collections(findings, settings.operator, settings.decay,
                           "prefix24" if settings.victims == "prefix24" else "full")


def _version(obj: dict[str, Any]) -> str | None:
    return obj.get("modified") or obj.get("created")


def _collection(old: Collection, objects: list[dict[str, Any]], log: _AddedLog) -> Collection:
    added = log.stamp(old.name, [(o["id"], _version(o) or "") for o in objects])
    entries = []
    for obj in objects:
        at = added[(obj["id"], _version(obj) or "")]
        version = _version(obj) or _timestamp(at)
        entries.append(Entry(at, obj["id"], version, _micros(version, "version"), obj["type"],
                             obj))
    entries.sort(key=lambda e: e.key)
    return Collection(old.id, old.name, entries, {e.id: e for e in entries})


class _AddedLog:
    """When each (collection, object id, version) was first served, in microseconds."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None)

    def __enter__(self) -> _AddedLog:
        self._db.execute("CREATE TABLE IF NOT EXISTS taxii_added (collection TEXT NOT NULL, "
                         "id TEXT NOT NULL, version TEXT NOT NULL, added_us INTEGER NOT NULL, "
                         "PRIMARY KEY (collection, id, version))")
        return self

    def __exit__(self, *exc: object) -> None:
        self._db.close()

    def stamp(self, collection: str, versions: list[tuple[str, str]]
              ) -> dict[tuple[str, str], int]:
        now = time.time_ns() // 1000
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("CREATE TEMP TABLE IF NOT EXISTS served (id TEXT, version TEXT)")
            db.execute("DELETE FROM served")
            db.executemany("INSERT INTO served VALUES (?, ?)", versions)
            db.execute("INSERT OR IGNORE INTO taxii_added SELECT ?, id, version, ? FROM served",
                       (collection, now))
            db.execute("DELETE FROM taxii_added WHERE collection = ? AND (id, version) NOT IN "
                       "(SELECT id, version FROM served)", (collection,))
            rows = db.execute("SELECT id, version, added_us FROM taxii_added "
                              "WHERE collection = ?", (collection,)).fetchall()
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return {(oid, version): added for oid, version, added in rows}


def _timestamp(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _micros(text: str, name: str) -> int:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise TaxiiError(400, f"{name} is not a timestamp", text[:100]) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return round(when.timestamp() * 1e6)


@dataclass(frozen=True)
class Query:
    """The filters and paging of a Get Objects / Get Manifest request."""

    added_after: int | None = None
    limit: int = PAGE
    after: tuple[int, str] | None = None   # from ``next``
    ids: frozenset[str] | None = None
    types: frozenset[str] | None = None
    versions: frozenset[str] = frozenset({"last"})   # last, first, all
    version_times: frozenset[int] = frozenset()       # versions asked for by timestamp
    spec_versions: frozenset[str] | None = None

    @classmethod
    def parse(cls, params: dict[str, str]) -> Query:
        def listed(name: str) -> frozenset[str] | None:
            value = params.get(name)
            return None if value is None else frozenset(v.strip() for v in value.split(","))

        limit = PAGE
        if "limit" in params:
            try:
                limit = int(params["limit"])
            except ValueError:
                raise TaxiiError(400, "limit is not a number", params["limit"][:100]) from None
            if limit < 1:
                raise TaxiiError(400, "limit must be at least 1")
        after = None
        if params.get("next"):
            try:
                added, _, last_id = base64.urlsafe_b64decode(
                    params["next"].encode()).decode().partition(":")
                after = (int(added), last_id)
            except (ValueError, binascii.Error, UnicodeDecodeError):
                raise TaxiiError(400, "next is not one this server gave",
                                 params["next"][:100]) from None
        versions = listed("match[version]") or frozenset({"last"})
        keywords = versions & {"last", "first", "all"}
        return cls(
            added_after=(_micros(params["added_after"], "added_after")
                         if "added_after" in params else None),
            limit=min(limit, PAGE), after=after, ids=listed("match[id]"),
            types=listed("match[type]"), versions=keywords,
            version_times=frozenset(_micros(v, "match[version]") for v in versions - keywords),
            spec_versions=listed("match[spec_version]"))

    def matches(self, entry: Entry) -> bool:
        if self.ids is not None and entry.id not in self.ids:
            return False
        if self.types is not None and entry.type not in self.types:
            return False
        if self.spec_versions is not None and "2.1" not in self.spec_versions:
            return False
        # one version per object: it is the first, the last and all
        return bool(self.versions) or entry.version_us in self.version_times

    def page(self, collection: Collection) -> tuple[list[Entry], str | None]:
        """The matching entries of one page, and the ``next`` for the rest (None: no more)."""
        entries = collection.entries
        start = 0
        if self.after is not None:
            start = bisect.bisect_right(entries, self.after, key=lambda e: e.key)
        elif self.added_after is not None:
            start = bisect.bisect_right(entries, self.added_after, key=lambda e: e.added_us)
        found: list[Entry] = []
        for entry in entries[start:]:
            if self.added_after is not None and entry.added_us <= self.added_after:
                continue
            if self.matches(entry):
                if len(found) == self.limit:
                    last = found[-1]
                    return found, base64.urlsafe_b64encode(
                        f"{last.added_us}:{last.id}".encode()).decode()
                found.append(entry)
        return found, None


def envelope_headers(entries: list[Entry]) -> dict[str, str]:
    if not entries:
        return {}
    return {"X-TAXII-Date-Added-First": _timestamp(entries[0].added_us),
            "X-TAXII-Date-Added-Last": _timestamp(entries[-1].added_us)}


def objects_envelope(entries: list[Entry], more: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"more": more is not None, "objects": [e.object for e in entries]}
    if more is not None:
        body["next"] = more
    return body


def manifest_envelope(entries: list[Entry], more: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"more": more is not None, "objects": [
        {"id": e.id, "date_added": _timestamp(e.added_us), "version": e.version,
         "media_type": STIX} for e in entries]}
    if more is not None:
        body["next"] = more
    return body


def accepts_taxii(accept: str | None) -> bool:
    """Whether an ``Accept`` header admits TAXII 2.1 JSON (absent or a wildcard does)."""
    if not accept:
        return True
    for item in accept.split(","):
        kind, *params = (part.strip().lower() for part in item.split(";"))
        if kind in ("*/*", "application/*"):
            return True
        if kind == "application/taxii+json":
            versions = [p.split("=", 1)[1] for p in params if p.startswith("version=")]
            if not versions or "2.1" in versions:
                return True
    return False
