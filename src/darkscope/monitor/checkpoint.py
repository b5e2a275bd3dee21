"""Restart state: what has been read and what is still open, committed in one rename.

A checkpoint is ``.checkpoint/state.json`` plus the packets read but not yet in a closed
interval (``open-N.parquet``, small: under one interval). It is written after the outputs it
covers, so after a kill at any moment a restart resumes from the last one: packets read after
it are read again, the parts they produce replace the ones a crashed run wrote (same names),
the alert log is cut back to its checkpointed length and the alerts raised again, review
items are upserted; nothing is counted twice and nothing is lost.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from darkscope.errors import DarkscopeError
from darkscope.io import atomic_path
from darkscope.monitor.engine import Counters, SpanState

FORMAT = "darkscope-monitor-checkpoint"
FORMAT_VERSION = 1
STATE = "state.json"


@dataclass
class Checkpoint:
    seq: int
    settings: dict            # what must not change across restarts (model, telescope, ...)
    files: list[dict]
    watermark: int | None
    interval_start: int | None
    span: SpanState
    counters: Counters
    alerts_bytes: int
    learning: dict | None = None   # monitor.learning.LearningState as a dict
    attacks: dict | None = None    # monitor.attacks.AttackTracker.state
    daily: dict | None = None      # monitor.daily.DailyState as a dict
    open_rows: pa.Table | None = None


def load(folder: Path) -> Checkpoint | None:
    path = folder / STATE
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DarkscopeError(f"{path}: unreadable monitor checkpoint ({exc})") from None
    if state.get("format") != FORMAT or state.get("format_version") != FORMAT_VERSION:
        raise DarkscopeError(f"{path}: not a darkscope monitor checkpoint of format "
                             f"version {FORMAT_VERSION}")
    open_rows = None
    if state["open"]:
        open_rows = pq.read_table(folder / state["open"])
    return Checkpoint(state["seq"], state["settings"], state["files"], state["watermark"],
                      state["interval_start"], SpanState(**state["span"]),
                      Counters(**state["counters"]), state["alerts_bytes"],
                      state.get("learning"), state.get("attacks"), state.get("daily"),
                      open_rows)


def save(folder: Path, checkpoint: Checkpoint) -> None:
    """Write the open rows, then commit the state with one atomic rename; drop older rows."""
    folder.mkdir(parents=True, exist_ok=True)
    open_name = None
    if checkpoint.open_rows is not None and checkpoint.open_rows.num_rows:
        open_name = f"open-{checkpoint.seq}.parquet"
        with atomic_path(folder / open_name) as tmp:
            pq.write_table(checkpoint.open_rows, tmp)
            _fsync(tmp)
    state = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "seq": checkpoint.seq,
        "settings": checkpoint.settings, "files": checkpoint.files,
        "watermark": checkpoint.watermark, "interval_start": checkpoint.interval_start,
        "span": asdict(checkpoint.span), "counters": checkpoint.counters.as_dict(),
        "alerts_bytes": checkpoint.alerts_bytes, "learning": checkpoint.learning,
        "attacks": checkpoint.attacks, "daily": checkpoint.daily,
        "open": open_name,
    }
    with atomic_path(folder / STATE) as tmp:
        tmp.write_text(json.dumps(state), encoding="utf-8")
        _fsync(tmp)
    for stale in folder.glob("open-*.parquet"):
        if stale.name != open_name:
            stale.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())
