"""Find darkscope's outputs under a directory by their schema, whatever the file names.

Every Parquet file (and JSON Lines file of the crawler and topic commands) is classified by the
columns it holds; files of one kind become one DuckDB view. A JSON file is classified by its
top-level keys: ``topics fit``'s ``topics.json`` (model, topics, documents) is read whole.
The directory is looked at again when anything under it changed (a running monitor adds parts
every interval), at most every few seconds, so a request never waits on a walk of a large tree.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

# The columns that identify each kind; the first kind whose columns are all present wins, so
# more specific kinds come first.
KINDS: dict[str, frozenset[str]] = {
    "verdicts": frozenset({"src", "window_start", "window_end", "verdict", "decided_by",
                           "confidence"}),
    "victims": frozenset({"victim", "start", "end", "packets", "estimated_attack_pps"}),
    "rules": frozenset({"period_start", "antecedent", "consequent", "support_hosts",
                        "pattern"}),
    "hosts": frozenset({"src", "period_start", "family", "match_share"}),
    "packets": frozenset({"ts", "src", "dst", "proto", "sport", "dport", "tcp_flags", "ttl"}),
    "topics": frozenset({"topic", "words"}),
    "topic_listings": frozenset({"url", "topic", "title"}),
    "listings": frozenset({"url", "title", "market"}),
    "topic_summaries": frozenset({"model", "topics", "documents"}),
    "ppml_evaluations": frozenset({"format", "round", "party", "accuracy", "per_class"}),
}
DOCUMENT_KINDS = frozenset({"topic_summaries", "ppml_evaluations"})  # whole JSON documents
RESCAN_S = 5.0
MAX_DOCUMENT = 256 << 20  # a JSON document larger than this is not one of ours


@dataclass
class Catalog:
    """The files of each kind under ``root``; ``version`` changes whenever they do."""

    root: Path
    files: dict[str, list[Path]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    version: int = 0
    _signature: tuple = ()
    _stats: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    _checked: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def refresh(self, force: bool = False) -> bool:
        """Look again if due; True when the set of files changed."""
        now = time.monotonic()
        if not force and now - self._checked < RESCAN_S:
            return False
        with self._lock:
            self._checked = now
            candidates = sorted(_walk(self.root))
            signature = tuple((str(p), s.st_size, s.st_mtime_ns) for p, s in candidates)
            if signature == self._signature:
                return False
            files: dict[str, list[Path]] = {}
            skipped: list[str] = []
            for path, _ in candidates:
                kind = classify(path)
                if kind is None:
                    skipped.append(str(path.relative_to(self.root)))
                else:
                    files.setdefault(kind, []).append(path)
            self.files, self.skipped, self._signature = files, skipped, signature
            self._stats = {entry[0]: entry for entry in signature}
            self.version += 1
            return True


    def key(self, path: Path) -> tuple[str, int, int]:
        """(path, size, mtime_ns) as this version of the catalog saw the file: what the
        summaries are keyed by, without a stat per file and per question."""
        found = self._stats.get(str(path))
        if found is not None:
            return found
        try:
            stat = path.stat()
        except OSError:
            return (str(path), -1, -1)
        return (str(path), stat.st_size, stat.st_mtime_ns)


def _walk(root: Path) -> Iterable[tuple[Path, os.stat_result]]:
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # checkpoints, caches
        for name in names:
            if name.endswith((".parquet", ".jsonl", ".json")) and not name.startswith("."):
                path = Path(folder) / name
                try:
                    yield path, path.stat()
                except OSError:
                    continue  # removed between the listing and the look (a rotation)


def classify(path: Path) -> str | None:
    """The kind of output ``path`` holds, or None for anything else."""
    columns = _columns(path)
    if columns is None:
        return None
    kind = next((kind for kind, needed in KINDS.items() if needed <= columns), None)
    if (kind in DOCUMENT_KINDS) != (path.suffix == ".json"):
        return None  # a table with a "topics" column is no summary, nor a document a table
    return kind


def _columns(path: Path) -> set[str] | None:
    try:
        if path.suffix == ".parquet":
            return set(pq.read_schema(path).names)
        if path.suffix == ".json":
            if path.stat().st_size > MAX_DOCUMENT:
                return None
            document = json.loads(path.read_bytes())
            return set(document) if isinstance(document, dict) else None
        with path.open("rb") as handle:
            first = handle.readline(1 << 20)
        record = json.loads(first)
        return set(record) if isinstance(record, dict) else None
    except (OSError, ValueError, UnicodeDecodeError):
        return None  # unreadable or foreign: listed as skipped, never an error page
