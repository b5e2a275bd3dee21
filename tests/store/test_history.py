"""The label history: append-only, with what each label replaced, undo as a new row, and
stores written by the first schema migrated in place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from darkscope.errors import UsageError
from darkscope.store import ReviewStore


def test_history_keeps_every_change_and_undo_restores(tmp_path: Path) -> None:
    with ReviewStore(tmp_path / "s.db") as store:
        store.enqueue([(9, 0, 3600, 4, "outlier", 0.55, [1.0])], "d", model_version="v0001@ab")
        first = store.label(9, "scan", window_start=0, who="alice", model_version="v0001@ab",
                            score=0.55)
        second = store.label(9, "ddos", window_start=0, who="bob", model_version="v0002@cd",
                             score=0.61)
        assert (first.previous, second.previous) == (None, "scan")
        assert store.items()[0].label == "ddos" and store.items()[0].model_version == "v0001@ab"
        with pytest.raises(UsageError, match="replaced since"):
            store.undo(first.id, who="alice")
        undo = store.undo(second.id, who="bob")
        assert (undo.label, undo.previous, undo.undoes) == ("scan", "ddos", second.id)
        assert store.items()[0].label == "scan"
        store.undo(undo.id, who="bob")   # undo the undo: ddos again
        withdrawn = store.undo(store.history(9)[0].id, who="bob")
        assert withdrawn.label == "scan"
        back_to_none = store.undo(store.label(5, "other", who="carol").id, who="carol")
        assert back_to_none.label is None and (5, None) not in store.labels()
        history = store.history(9)
        assert [h.label for h in history] == ["scan", "ddos", "scan", "ddos", "scan"]
        assert [h.who for h in history][-2:] == ["bob", "alice"]
        assert history[-1].model_version == "v0001@ab" and history[-1].score == 0.55
        with pytest.raises(UsageError, match="no label #999"):
            store.undo(999)


def test_a_schema_1_store_is_migrated_without_losing_labels(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1');
        CREATE TABLE review_queue (src INTEGER NOT NULL, window_start INTEGER NOT NULL,
            window_end INTEGER NOT NULL, packets INTEGER NOT NULL, reason TEXT NOT NULL,
            confidence REAL NOT NULL, features TEXT NOT NULL, feature_definition TEXT NOT NULL,
            queued_at TEXT NOT NULL, PRIMARY KEY (src, window_start));
        CREATE TABLE labels (id INTEGER PRIMARY KEY AUTOINCREMENT, src INTEGER NOT NULL,
            window_start INTEGER, label TEXT NOT NULL CHECK (label IN ('ddos','scan','other')),
            note TEXT, who TEXT NOT NULL, at TEXT NOT NULL);
        INSERT INTO review_queue VALUES (1, 0, 10, 3, 'outlier', 0.5, '[1.0]', 'd', 'then');
        INSERT INTO labels (src, window_start, label, note, who, at)
            VALUES (1, NULL, 'ddos', 'seen it', 'alice', '2026-01-01T00:00:00+00:00');
    """)
    db.close()
    with ReviewStore(path) as store:
        (label,) = store.history()
        assert (label.src, label.label, label.note, label.who) == (1, "ddos", "seen it", "alice")
        assert store.items()[0].label == "ddos"
        undo = store.undo(label.id, who="alice")  # the old CHECK forbade a withdrawn label
        assert undo.label is None and store.labels() == {}
    version = sqlite3.connect(path).execute(
        "SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    assert version == "2"
