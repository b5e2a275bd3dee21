"""Reading a capture ten times larger does not need more memory: one buffer, one batch."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from darkscope.simulate import load_scenario, simulate
from darkscope.simulate.timeutil import parse_duration, parse_instant

_INGEST_AND_REPORT_PEAK = """
import resource, sys
from darkscope.cli import main
code = main(sys.argv[1:])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
sys.exit(code)
"""


def _peak_rss_kib(capture: Path, out: Path) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _INGEST_AND_REPORT_PEAK, "ingest", str(capture), "-o", str(out),
         "--batch-rows", "65536", "--no-progress"], check=True, capture_output=True, text=True)
    return int(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_ingest_memory_does_not_grow_with_the_capture(tmp_path: Path) -> None:
    scenario = dataclasses.replace(load_scenario("mirai-2016"),
                                   start_ns=parse_instant("2016-09-20"),
                                   duration_ns=parse_duration("1d"))
    peaks, sizes = [], []
    for scale in (0.01, 0.1):
        capture = tmp_path / f"day-{scale}.pcap"
        result = simulate(scenario, capture, seed=1, scale=scale)
        out = tmp_path / f"packets-{scale}.parquet"
        peaks.append(_peak_rss_kib(capture, out))
        sizes.append(capture.stat().st_size)
        assert pq.read_metadata(out).num_rows == result.packets
        capture.unlink()
    assert sizes[1] > 9 * sizes[0] and sizes[1] > 300_000_000
    growth = (peaks[1] - peaks[0]) * 1024
    assert growth < 64 * 2**20, f"peak RSS grew by {growth / 2**20:.0f} MiB for " \
                                f"{(sizes[1] - sizes[0]) / 2**20:.0f} MiB more capture"
