"""The long-running loop: poll the captures, feed the engine, checkpoint, report health.

Signals: SIGTERM and SIGINT finish the file being read, checkpoint and exit 0; SIGHUP
reopens the alert log (after logrotate moved it). Health goes to ``status.json`` after every
poll (packets/s, lag behind real time, memory, files, problems) and, on a terminal, to one
progress line on stderr.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from darkscope import progress
from darkscope.backscatter.flow import BY_MODEL, Decisions
from darkscope.backscatter.rules import RuleSet
from darkscope.backscatter.telescope import Telescope
from darkscope.errors import DarkscopeError
from darkscope.io import atomic_path
from darkscope.monitor import checkpoint
from darkscope.monitor.daily import DailyState, ScannerJobs
from darkscope.monitor.engine import Engine
from darkscope.monitor.interface import CLOCK_DELAY_NS, InterfaceSource
from darkscope.monitor.learning import Learner, LearningState, version_name
from darkscope.monitor.outputs import AlertLog, Layout, iso, syslog_handler
from darkscope.monitor.watch import DirectoryWatcher
from darkscope.store import ReviewStore


@dataclass
class Settings:
    watch: Path | None         # a directory of captures, or
    interface: str | None      # a network interface (one of the two)
    output: Path
    model_path: Path
    telescope: Telescope
    bpf_filter: str | None = None
    interval_s: int = 60
    poll_s: float = 1.0
    settle_s: float = 30.0
    once: bool = False         # exit once caught up
    finish: bool = False       # and judge the open span, the input being complete
    learn: bool = True         # learn expert labels from the store while running
    self_train: bool = False   # also learn each span's rule labels and confident verdicts
    scanners: bool = True      # tools per interval, fingerprint rules per day
    scanner_min_hosts: int = 1000
    syslog: str | None = None  # also send alerts to syslog (/dev/log, udp://h:p, tcp://h:p)


class Monitor:
    def __init__(self, settings: Settings, rules: RuleSet, store: ReviewStore | None) -> None:
        self.settings = settings
        self.rules = rules
        syslog = syslog_handler(settings.syslog) if settings.syslog else None
        self.layout = Layout(settings.output)
        self.layout.root.mkdir(parents=True, exist_ok=True)
        source = (f"interface {settings.interface}" if settings.interface else
                  str(Path(settings.watch or ".").resolve()))
        self.fixed = {"source": source, "filter": settings.bpf_filter,
                      "start_model": version_name(1, settings.model_path),
                      "telescope": str(settings.telescope), "interval_s": settings.interval_s}
        saved_state = checkpoint.load(self.layout.checkpoint)
        if saved_state is not None:
            changed = [f"{k} {saved_state.settings.get(k)!r} -> {v!r}"
                       for k, v in self.fixed.items() if saved_state.settings.get(k) != v]
            if changed:
                raise DarkscopeError(f"{settings.output} was monitored with other settings "
                                     f"({'; '.join(changed)}); use a new -o directory")
        if saved_state is None:
            _check_fresh(self.layout.root)
            self.layout.rollback(None, None, None, models_after=1)
        else:
            daily_state = saved_state.daily or {}
            self.layout.rollback(saved_state.interval_start, saved_state.span.start,
                                 daily_state.get("day_start"),
                                 (saved_state.learning or {}).get("version", 1))
        learned = saved_state.learning if saved_state is not None else None
        self.learner = Learner(self.layout.root, settings.model_path,
                               LearningState(**learned) if learned else None, store=store,
                               self_train=settings.self_train, enabled=settings.learn)
        saved, version = self.learner.current()
        daily = saved_state.daily if saved_state is not None else None
        self.scanners = ScannerJobs(self.layout, settings.scanner_min_hosts,
                                    settings.interval_s, DailyState(**daily) if daily else None)
        self.alerts = AlertLog(self.layout.alerts, syslog)
        self.engine = Engine(self.layout, saved, version, rules, settings.telescope, store,
                             self.alerts, settings.interval_s, on_span_closed=self._span_closed,
                             on_part_written=self.scanners.part_written
                             if settings.scanners else None)
        self.seq = 0
        files = None
        if saved_state is not None:
            self.seq = saved_state.seq
            files = saved_state.files
            self.alerts.truncate(saved_state.alerts_bytes)
            self.engine.restore(saved_state.watermark, saved_state.interval_start,
                                saved_state.span, saved_state.counters, saved_state.open_rows,
                                saved_state.attacks)
        else:  # a run killed before its first checkpoint: all it wrote is redone
            self.alerts.truncate(0)
        self.resumed = saved_state is not None
        self.source: DirectoryWatcher | InterfaceSource
        if settings.interface:
            self.source = InterfaceSource(settings.interface, settings.bpf_filter,
                                          settings.poll_s)
        else:
            self.source = DirectoryWatcher(settings.watch or Path("."), files,
                                           settle_s=settings.settle_s)
        self._stop = False
        self._reopen = False
        self._started = time.time()
        self._rate = 0.0
        self._samples: deque[tuple[float, int]] = deque(
            [(time.monotonic(), self.engine.counters.packets)])

    def _on_signal(self, signum: int, _frame: object) -> None:
        if signum == signal.SIGHUP:
            self._reopen = True
        else:
            self._stop = True

    def run(self) -> dict:
        """Poll until stopped (or caught up with ``once``); returns the last status."""
        previous = {s: signal.signal(s, self._on_signal)
                    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        try:
            while not self._stop:
                got = self._poll_once()
                if self._reopen:
                    self.alerts.reopen()
                    self._reopen = False
                if got:
                    continue
                if self.settings.once:
                    break
                self._write_status("running")
                if not self.source.live:  # a live read already waited for frames
                    time.sleep(self.settings.poll_s)
            if self.settings.finish and not self._stop:
                self.engine.advance(finish=True)
                if self.settings.scanners:
                    self.scanners.day_over()
            self._commit(state="stopped")
            return self.status("stopped")
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self.alerts.close()
            self.source.close()
            if progress.settings.active() and sys.stderr.isatty():
                print(file=sys.stderr)

    def _poll_once(self) -> bool:
        got = False
        if self.learner.from_experts(self.engine.saved) is not None:
            self._use_current_model()  # labels given since the last poll judge what comes next
            got = True  # a new model version is state to checkpoint
        for _origin, batches in self.source.poll():
            self.engine.feed(batches)
            self.engine.advance()
            got = True
            if self._stop:
                break
        if self.source.live:
            self.engine.clock(self.source.read_started_ns - CLOCK_DELAY_NS)
            self.engine.advance()

        if got:
            self._commit()
        return got

    def _span_closed(self, table: pa.Table, decisions: Decisions, span_start: int) -> None:
        judged_by_model = decisions.decided_by == BY_MODEL
        if self.learner.after_span(self.engine.saved, table, self.rules, self.settings.telescope,
                                   decisions.outlier[judged_by_model], span_start):
            self._use_current_model()

    def _use_current_model(self) -> None:
        self.engine.saved, self.engine.model_version = self.learner.current()

    def _measure_rate(self) -> None:
        """Packets read per second over the last ten seconds or so."""
        now, count = time.monotonic(), self.engine.counters.packets
        self._samples.append((now, count))
        while len(self._samples) > 2 and now - self._samples[1][0] >= 10:
            self._samples.popleft()
        then, before = self._samples[0]
        self._rate = (count - before) / (now - then) if now > then else 0.0

    def _commit(self, state: str = "running") -> None:
        self.seq += 1
        checkpoint.save(self.layout.checkpoint, checkpoint.Checkpoint(
            self.seq, self.fixed, self.source.state(), self.engine.watermark,
            self.engine.interval_start, self.engine.span, self.engine.counters,
            self.alerts.sync(), self.learner.save_state(), self.engine.attacks.state,
            self.scanners.as_dict(), self.engine.open_rows()))
        self._write_status(state)

    def _write_status(self, state: str) -> None:
        self._measure_rate()
        status = self.status(state)
        with atomic_path(self.layout.status) as tmp:
            tmp.write_text(json.dumps(status, indent=2) + "\n", encoding="utf-8")
        if progress.settings.active() and sys.stderr.isatty():
            lag = status["lag_s"]
            print(f"\rmonitor: {status['packets']:,} packets, {self._rate:,.0f}/s, "
                  f"lag {'-' if lag is None else f'{lag:,.0f} s'}, {status['alerts']:,} "
                  f"alerts, {status['files']} files", end="", file=sys.stderr, flush=True)

    def status(self, state: str) -> dict:
        engine = self.engine
        now = time.time()
        watermark = engine.watermark
        return {
            "state": state, "pid": os.getpid(), "updated_at": iso(int(now * 1e9)),
            "started_at": iso(int(self._started * 1e9)), "source": self.fixed["source"],
            "model_version": engine.model_version, "telescope": self.fixed["telescope"],
            "learning": {"updates": self.learner.state.updates[-5:],
                         "drift": self.learner.state.drift, "drifts": self.learner.state.drifts,
                         "self_training": self.settings.self_train,
                         "held_by_drift": self.settings.self_train
                         and self.learner.state.drift is not None},
            "scanners": {"tools_today": self.scanners.state.tools,
                         "days": self.scanners.state.days[-3:]},
            "interval_s": self.settings.interval_s,
            **engine.counters.as_dict(),
            "packets_per_s": round(self._rate, 1),
            "watermark": None if watermark is None else iso(watermark),
            "lag_s": None if watermark is None else round(now - watermark / 1e9, 1),
            "open_span_start": None if engine.span.start is None else iso(engine.span.start),
            "files": self.source.file_count(),
            "capture_problems": [str(p) for p in self.source.problems[-20:]],
            "skipped_records": self.source.skipped_records,
            "drops": self.source.drops(),
            "memory_mb": round(_rss_bytes() / 2**20, 1),
            "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "checkpoint_seq": self.seq,
        }


MONITOR_ENTRIES = {"packets", "hosts", "verdicts", "victims", "rules", "models",
                   "alerts.jsonl", "status.json", ".checkpoint", "confirm-drift"}


def _check_fresh(root: Path) -> None:
    """Without a checkpoint the directory is new, or a monitor's that was killed before its
    first checkpoint (whose outputs are then removed): never someone else's files."""
    foreign = sorted(p.name for p in root.iterdir() if p.name not in MONITOR_ENTRIES)
    if foreign:
        raise DarkscopeError(f"{root} holds files that are not a monitor's "
                             f"({', '.join(foreign[:3])}); give -o a new or a monitor's "
                             "directory")


def _rss_bytes() -> int:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def read_status(output: Path) -> dict:
    path = Layout(output).status
    if not path.exists():
        raise DarkscopeError(f"{output}: no monitor status (status.json) yet")
    return json.loads(path.read_text(encoding="utf-8"))
