"""The scanner side of the monitor: tools per interval, fingerprint rules per day.

Per closed interval, every source host of the interval's packets is attributed to a tool
family (Mirai, ZMap, Masscan or unknown, from per-packet fingerprints: ``hosts attribute``)
into ``OUT/hosts/date=…/hour=…/HHMMSS.parquet``. When packet time passes midnight, the day's
packet table is mined for association rules over host transactions (``rules mine``, the same
settings) into ``OUT/rules/date=…/rules.parquet``: the rules timeline grows a day at a time
(``darkscope rules timeline OUT/rules/*/rules.parquet``). Both are named by the time they
cover, so a restart rewrites rather than duplicates them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from darkscope.errors import DarkscopeError
from darkscope.monitor.outputs import Layout

NS = 1_000_000_000
DAY_NS = 86400 * NS


@dataclass
class DailyState:
    day_start: int | None = None                      # ns; the day being accumulated
    tools: dict[str, int] = field(default_factory=dict)   # host-intervals per family, today
    days: list[dict] = field(default_factory=list)    # the last days mined, newest last


class ScannerJobs:
    def __init__(self, layout: Layout, min_hosts: int, interval_s: int,
                 state: DailyState | None = None) -> None:
        self.layout = layout
        self.min_hosts = min_hosts
        self.interval_ns = interval_s * NS
        self.state = state or DailyState()

    def part_written(self, part: Path, start: int, end: int) -> None:
        """Attribute the hosts of each interval in a new packet part; mine the previous day
        once a new day begins."""
        from darkscope.patterns.pipeline import attribute_periods

        day = start // DAY_NS * DAY_NS
        if self.state.day_start is None:
            self.state.day_start = day
        if day > self.state.day_start:
            self.day_over()
            self.state.day_start = day
        try:
            hosts = pa.concat_tables(attribute_periods([self.layout.root / part],
                                                       period_ns=self.interval_ns))
        except DarkscopeError:
            return  # no IPv4 packets in the interval
        self.layout.write(hosts, self.layout.packets_part(start, kind="hosts"))
        for family, count in Counter(hosts["family"].to_pylist()).items():
            self.state.tools[family] = self.state.tools.get(family, 0) + count

    def day_over(self) -> None:
        """Mine the day being accumulated (also at the end of a complete input)."""
        from darkscope.patterns.pipeline import MineSettings, MineSummary, mine_periods

        if self.state.day_start is None:
            return
        date = datetime.fromtimestamp(self.state.day_start // NS, UTC).strftime("%Y-%m-%d")
        folder = self.layout.root / "packets" / f"date={date}"
        record: dict = {"date": date, "tools": dict(self.state.tools)}
        if folder.is_dir():
            summary = MineSummary()
            try:
                tables = list(mine_periods([folder], MineSettings(min_hosts=self.min_hosts),
                                           summary=summary))
            except DarkscopeError as exc:
                tables, record["skipped"] = [], str(exc)
            if tables:
                self.layout.write(pa.concat_tables(tables),
                                  Path("rules") / f"date={date}" / "rules.parquet")
            record.update(hosts=summary.hosts, patterns=summary.patterns,
                          rules=sum(table.num_rows for table in tables))
        self.state.days = [*self.state.days[-6:], record]
        self.state.tools = {}

    def as_dict(self) -> dict:
        return asdict(self.state)
