"""Embedded state shared by darkscope's parts: the expert review queue and its labels.

SQLite (Python's ``sqlite3``) rather than DuckDB: the queue is small, row-at-a-time state that a
CLI, a training run and (later) a web dashboard read and write *concurrently*; SQLite's WAL mode
gives many readers and one writer across processes with short row-level transactions, while a
DuckDB file admits one writing process at a time. It needs no dependency, and DuckDB can still
attach the file for analytics (``ATTACH 'x.db' (TYPE sqlite)``).
"""

from darkscope.store.review import DEFAULT_STORE, Guess, Label, ReviewItem, ReviewStore

__all__ = ["DEFAULT_STORE", "Guess", "Label", "ReviewItem", "ReviewStore"]
