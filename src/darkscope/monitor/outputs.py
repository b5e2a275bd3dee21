"""Where the monitor writes, and how: Hive-partitioned Parquet parts named by the time they
start (a restart removes the parts past its checkpoint and writes them again), and an
append-only JSON Lines alert log.

    OUT/packets/date=2016-08-20/hour=12/20160820T120300.parquet  packets from 12:03 on: one
                        interval when keeping up, up to the hour's end when catching up
    OUT/hosts/date=…/hour=…/20160820T120300.parquet      tool family of each host, per interval
    OUT/verdicts/date=…/hour=…/span-20160820T120000.parquet   final verdicts of a span's windows
                        in that hour (backscatter detect's columns + model_version)
    OUT/victims/date=…/hour=…/span-20160820T120000.parquet    attacks of a span
    OUT/rules/date=2016-08-20/rules.parquet               the day's fingerprint rules
    OUT/models/v0002/                                     model versions learnt while running
    OUT/alerts.jsonl, OUT/status.json, OUT/.checkpoint/   alerts; health; restart state
"""

from __future__ import annotations

import ipaddress
import json
import logging
import logging.handlers
import os
import shutil
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.parquet as pq

from darkscope.errors import UsageError
from darkscope.io import atomic_path

NS = 1_000_000_000


def _stamp(ns: int) -> datetime:
    return datetime.fromtimestamp(ns // NS, UTC)


def _part_start(name: str) -> int | None:
    """The start (ns) encoded in a part's name (``[span-]YYYYmmddTHHMMSS.parquet``)."""
    try:
        moment = datetime.strptime(name.removeprefix("span-")[:15], "%Y%m%dT%H%M%S")
    except ValueError:
        return None
    return int(moment.replace(tzinfo=UTC).timestamp()) * NS


def iso(ns: int) -> str:
    return _stamp(ns).isoformat().replace("+00:00", "Z")


class Layout:
    """Paths under the output directory; parts are relative to :attr:`root`."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @staticmethod
    def _partition(kind: str, ns: int) -> Path:
        moment = _stamp(ns)
        return Path(kind) / f"date={moment:%Y-%m-%d}" / f"hour={moment:%H}"

    def packets_part(self, start: int, kind: str = "packets") -> Path:
        """Packets (or their hosts' tools) from ``start`` to the next part's start."""
        return self._partition(kind, start) / f"{_stamp(start):%Y%m%dT%H%M%S}.parquet"

    def verdicts_part(self, hour_start: int, span_start: int) -> Path:
        return self._partition("verdicts", hour_start) / \
            f"span-{_stamp(span_start):%Y%m%dT%H%M%S}.parquet"

    def victims_part(self, span_start: int) -> Path:
        return self._partition("victims", span_start) / \
            f"span-{_stamp(span_start):%Y%m%dT%H%M%S}.parquet"

    @property
    def alerts(self) -> Path:
        return self.root / "alerts.jsonl"

    @property
    def status(self) -> Path:
        return self.root / "status.json"

    @property
    def checkpoint(self) -> Path:
        return self.root / ".checkpoint"

    def rollback(self, parts_from: int | None, spans_from: int | None, days_from: int | None,
                 models_after: int) -> int:
        """Remove what a run killed after its last checkpoint wrote past it (``None``: the
        run never checkpointed, so everything): the restart writes it again, perhaps cut
        into other parts, and nothing may be there twice. Returns the files removed."""
        removed = 0
        limits = {"packets": parts_from, "hosts": parts_from, "verdicts": spans_from,
                  "victims": spans_from}
        for kind, limit in limits.items():
            for part in sorted((self.root / kind).rglob("*.parquet")):
                stamp = _part_start(part.name)
                if stamp is None or limit is None or stamp >= limit:
                    part.unlink()
                    removed += 1
        for rules in sorted((self.root / "rules").glob("date=*/rules.parquet")):
            day = _part_start(rules.parent.name.removeprefix("date=").replace("-", "")
                              + "T000000")
            if days_from is None or day is None or day >= days_from:
                rules.unlink()
                removed += 1
        for model in sorted((self.root / "models").glob("v[0-9]*")):
            if int(model.name[1:]) > models_after:
                shutil.rmtree(model)
                removed += 1
        return removed

    def write(self, table: pa.Table, part: Path) -> None:
        target = self.root / part
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            pq.write_table(table, tmp, compression="zstd")
            with tmp.open("rb") as handle:  # durable before a checkpoint names it
                os.fsync(handle.fileno())


class AlertLog:
    """alerts.jsonl, appended; :meth:`sync` makes what was written durable (checkpoints),
    :meth:`truncate` drops what a crash left after the last checkpoint (it is re-emitted),
    :meth:`reopen` follows a logrotate rename (SIGHUP)."""

    def __init__(self, path: Path,
                 syslog: logging.handlers.SysLogHandler | None = None) -> None:
        self.path = path
        self._handle: IO[str] = path.open("a", encoding="utf-8")
        self._syslog = syslog

    def write(self, records: list[dict]) -> None:
        lines = [json.dumps(r, sort_keys=True) for r in records]
        self._handle.write("".join(line + "\n" for line in lines))
        self._handle.flush()
        if self._syslog is not None:
            for record, line in zip(records, lines, strict=True):
                urgent = record.get("stage") in ("start", "provisional", "final")
                self._syslog.emit(logging.makeLogRecord({
                    "msg": f"darkscope-monitor: {line}", "name": "darkscope",
                    "levelno": logging.WARNING if urgent else logging.INFO,
                    "levelname": "WARNING" if urgent else "INFO"}))

    def sync(self) -> int:
        """Flush to disk; the file's size (what a checkpoint records)."""
        self._handle.flush()
        os.fsync(self._handle.fileno())
        return self._handle.tell()

    def truncate(self, size: int) -> None:
        if self.path.stat().st_size > size:
            self._handle.truncate(size)
            self._handle.seek(size)

    def reopen(self) -> None:
        self._handle.close()
        self._handle = self.path.open("a", encoding="utf-8")

    def close(self) -> None:
        self._handle.close()
        if self._syslog is not None:
            self._syslog.close()


def syslog_handler(target: str) -> logging.handlers.SysLogHandler:
    """``/dev/log`` (a local socket), ``udp://HOST:PORT`` or ``tcp://HOST:PORT``; facility
    local0, so a syslog daemon can route the monitor's alerts apart. Raises
    :class:`UsageError` for a target that cannot be reached (checked before anything is
    written)."""
    facility = logging.handlers.SysLogHandler.LOG_LOCAL0
    if target.startswith(("udp://", "tcp://")):
        host, _, port = target[6:].rpartition(":")
        if not host or not port.isdigit():
            raise UsageError(f"--syslog {target!r}: expected udp://HOST:PORT or tcp://HOST:PORT")
        kind = socket.SOCK_DGRAM if target.startswith("udp") else socket.SOCK_STREAM
        try:
            return logging.handlers.SysLogHandler((host.strip("[]"), int(port)), facility, kind)
        except OSError as exc:
            raise UsageError(f"--syslog {target}: {exc.strerror or exc}") from None
    if not Path(target).exists():
        raise UsageError(f"--syslog {target}: no such socket (a path like /dev/log, or "
                         "udp://HOST:PORT)")
    return logging.handlers.SysLogHandler(target, facility)


_EVIDENCE = ("packets", "confidence", "decided_by", "model_version", "context_packets")


def alert_records(ddos: pa.Table, stage: str) -> list[dict]:
    """One alert per DDoS host-window of a verdict table: the host (the victim whose
    backscatter reached the telescope), its window, and the evidence: packets, confidence,
    who decided (rule, model, expert), model version and the 17 feature values."""
    if not ddos.num_rows:
        return []
    features = [n for n in ddos.column_names if n not in {
        "src", "src6", "window_start", "window_end", "verdict", *_EVIDENCE}]
    rows = ddos.to_pylist()
    out = []
    for row in rows:
        host = row["src6"] or _ipv4(row["src"])
        start = iso(_ns(row["window_start"]))
        out.append({
            "key": f"{host}/{start}", "kind": "ddos", "stage": stage, "host": host,
            "window_start": start, "window_end": iso(_ns(row["window_end"])),
            **{name: row[name] for name in _EVIDENCE},
            "features": {name: row[name] for name in features},
        })
    return out


def _ns(value: datetime) -> int:
    return int(value.timestamp()) * NS


def _ipv4(value: int) -> str:
    return str(ipaddress.IPv4Address(value))
