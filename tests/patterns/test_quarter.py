"""The whole mirai-2016 quarter streamed day by day: every period is mined, and the planted
window pattern lives exactly in its planted weeks (scale 0.001, support scaled to 5 hosts)."""

from __future__ import annotations

import numpy as np
import pytest

from darkscope.patterns import MineSettings, mine
from darkscope.patterns.timeline import build_timeline
from darkscope.simulate import load_scenario, simulate


@pytest.mark.slow
def test_quarter_timeline_follows_the_planted_periods(tmp_path):
    capture = tmp_path / "q3.pcap"
    simulate(load_scenario("mirai-2016"), capture, scale=0.001, seed=1)
    rules = mine([capture], MineSettings(min_hosts=5, all_rules=True))
    timeline = build_timeline(rules)
    assert len(timeline.periods) == 77
    rows = {r["rule"]: r for r in timeline.table.to_pylist()}

    def day(ts) -> str:
        return str(np.datetime64(ts.replace(tzinfo=None), "D"))

    window = rows["{win=1320, win=2376} -> {win=792}"]
    assert "2016-08-06" <= day(window["first_seen"]) <= "2016-08-09"
    assert day(window["last_seen"]) == "2016-09-03"
    assert day(window["vanishes"][-1]) == "2016-09-04"          # early days may dip below 5
    assert "2016-08-25" <= day(window["peak_period"]) <= "2016-09-01"
    tos_b = rows["{tos=204, tos=208, tos=212} -> {tos=216}"]
    assert "2016-08-02" <= day(tos_b["first_seen"]) <= "2016-08-12"
    assert "2016-09-10" <= day(tos_b["last_seen"]) <= "2016-09-14"
    ports = rows["{dport=2323} -> {dport=23}"]
    assert "2016-09-18" <= day(ports["peak_period"]) <= "2016-09-29"
    assert ports["peak_hosts"] > 300
