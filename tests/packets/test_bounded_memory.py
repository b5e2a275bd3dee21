"""Memory stays flat while a capture much larger than one batch is ingested."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from darkscope.simulate import load_scenario, simulate
from darkscope.timeutil import parse_duration, parse_instant

# Run `darkscope ingest` while a thread samples the resident set size from /proc.
_INGEST_SAMPLING_RSS = """
import json, os, sys, threading, time
from darkscope.cli import main
page = os.sysconf("SC_PAGE_SIZE")
samples, done = [], threading.Event()
def sample():
    while not done.is_set():
        with open("/proc/self/statm") as statm:
            samples.append(int(statm.read().split()[1]) * page)
        time.sleep(0.005)
thread = threading.Thread(target=sample)
thread.start()
code = main(sys.argv[1:])
done.set()
thread.join()
print(json.dumps(samples))
sys.exit(code)
"""


@pytest.mark.slow
def test_ingest_memory_stays_flat(tmp_path: Path) -> None:
    scenario = dataclasses.replace(load_scenario("mirai-2016"),
                                   start_ns=parse_instant("2016-09-20"),
                                   duration_ns=parse_duration("1d"))
    capture = tmp_path / "day.pcap"
    result = simulate(scenario, capture, seed=1, scale=0.1)
    size = capture.stat().st_size
    out = tmp_path / "packets.parquet"
    done = subprocess.run(
        [sys.executable, "-c", _INGEST_SAMPLING_RSS, "ingest", str(capture), "-o", str(out),
         "--batch-rows", "65536", "--no-progress"], check=True, capture_output=True, text=True)
    samples = json.loads(done.stdout.strip().splitlines()[-1])
    assert pq.read_metadata(out).num_rows == result.packets
    assert len(samples) > 20
    warm = max(samples[: len(samples) // 4])  # imports, first batches, allocator pools
    later = max(samples[len(samples) // 4:])
    assert size > 350_000_000
    # One buffer (16 MiB) and one batch (~8 MiB) are all a read holds: the rest of a 400 MB
    # capture must not raise the peak.
    rise = f"RSS {warm / 2**20:.0f} -> {later / 2**20:.0f} MiB over {size / 2**20:.0f} MiB"
    assert later - warm < 48 * 2**20, rise
