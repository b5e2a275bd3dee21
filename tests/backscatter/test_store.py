from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from darkscope.errors import DarkscopeError, UsageError
from darkscope.store import ReviewStore


def test_queue_and_labels_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with ReviewStore(path) as store:
        store.enqueue([(1, 0, 3600, 5, "outlier", 0.4, [1.0] * 17),
                       (2, 0, 3600, 9, "low-confidence", 0.7, [2.0] * 17)], "def-1")
        store.label(1, "ddos", note="SYN-ACKs from 8443", who="alice")
    with ReviewStore(path) as store:  # a new process would see the same
        items = store.items()
        assert [(i.src, i.label, i.labelled_by) for i in items] == [(1, "ddos", "alice"),
                                                                     (2, None, None)]
        assert [i.src for i in store.items(pending_only=True)] == [2]
        assert items[0].features == [1.0] * 17 and items[0].feature_definition == "def-1"
        label = store.labels()[(1, None)]
        assert label.note == "SYN-ACKs from 8443" and label.at.endswith("+00:00")


def test_latest_label_wins_and_window_labels(tmp_path: Path) -> None:
    with ReviewStore(tmp_path / "s.db") as store:
        store.enqueue([(7, 3600, 7200, 1, "outlier", 0.5, [0.0] * 17)], "d")
        store.label(7, "scan", who="bob")
        store.label(7, "ddos", who="carol")
        store.label(7, "other", window_start=3600, who="dave")
        labels = store.labels()
        assert labels[(7, None)].label == "ddos" and labels[(7, None)].who == "carol"
        assert labels[(7, 3600)].label == "other"
        assert store.items()[0].label == "other"  # the window's own label beats the host's


def test_requeue_refreshes_instead_of_duplicating(tmp_path: Path) -> None:
    with ReviewStore(tmp_path / "s.db") as store:
        store.enqueue([(1, 0, 10, 5, "outlier", 0.4, [1.0])], "d")
        store.enqueue([(1, 0, 10, 6, "low-confidence", 0.8, [2.0])], "d")
        (item,) = store.items()
        assert (item.packets, item.reason, item.features) == (6, "low-confidence", [2.0])


def test_bad_label_and_foreign_file(tmp_path: Path) -> None:
    with ReviewStore(tmp_path / "s.db") as store, pytest.raises(UsageError, match="ddos"):
        store.label(1, "benign")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DarkscopeError, match="not a darkscope store"):
        ReviewStore(junk)
    with pytest.raises(UsageError, match="does not exist"):
        ReviewStore(tmp_path / "missing" / "s.db")


def test_label_check_constraint_is_in_the_database(tmp_path: Path) -> None:
    ReviewStore(tmp_path / "s.db").close()
    db = sqlite3.connect(tmp_path / "s.db")
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO labels (src, label, who, at) VALUES (1, 'x', 'me', 'now')")


def test_a_store_created_by_a_failed_block_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with pytest.raises(RuntimeError), ReviewStore(path):
        raise RuntimeError("bad input")
    assert not list(tmp_path.iterdir())
    with ReviewStore(path) as store:
        store.label(1, "ddos")
    with pytest.raises(RuntimeError), ReviewStore(path):
        raise RuntimeError("bad input")
    with ReviewStore(path) as store:  # an existing store is never removed
        assert store.has_queued(1) is False and len(store.labels()) == 1
