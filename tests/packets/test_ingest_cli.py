"""The ``darkscope ingest`` command: outputs, summaries, errors and atomic writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import darkscope.packets as packets
from darkscope.cli import main
from darkscope.data import sample_capture

from .captures import LINK_RAW, frames_for, write_pcap

DARKSCOPE = str(Path(sys.executable).parent / "darkscope")  # this environment's entry point


def test_single_file_output_and_json_summary(tmp_path: Path, capsys) -> None:
    out = tmp_path / "packets.parquet"
    assert main(["ingest", str(sample_capture()), "-o", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["packets"] == 896 and info["sources"] == 60
    assert info["protocols"] == {"tcp": 896}
    written = pq.read_table(out)
    assert written.equals(packets.read(sample_capture()))
    assert written.schema.metadata[b"darkscope.schema"] == b"packets"


def test_hour_partitions_read_back_as_one_dataset(tmp_path: Path, capsys) -> None:
    frames = frames_for(LINK_RAW, base_ns=1_470_000_000_000_000_000)
    for i, frame in enumerate(frames):
        frame.ts_ns += (i % 3) * 3_600_000_000_000  # spread over three hours
    capture = tmp_path / "hours.pcap"
    capture.write_bytes(write_pcap(frames, LINK_RAW, nanos=True))
    out = tmp_path / "dataset"
    assert main(["ingest", str(capture), "-o", str(out), "--batch-rows", "4"]) == 0
    parts = sorted(p.name for p in out.iterdir())
    assert parts == ["hour=2016-07-31T21", "hour=2016-07-31T22", "hour=2016-07-31T23"]
    table = ds.dataset(out, format="parquet", partitioning="hive").to_table()
    assert table.num_rows == len(frames)
    expected = sorted(f.ts_ns for f in frames)
    assert sorted(table.column("ts").cast("int64").to_pylist()) == expected
    assert "packets" in capsys.readouterr().out


def test_bad_capture_is_one_line_error_and_no_output(tmp_path: Path, capsys) -> None:
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(sample_capture().read_bytes()[:50000])
    out = tmp_path / "o.parquet"
    assert main(["ingest", str(cut), "-o", str(out), "--batch-rows", "100"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "at byte 49944" in err and "Traceback" not in err
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [cut]  # no temporary left behind


def test_skip_mode_keeps_good_packets_and_warns(tmp_path: Path, capsys) -> None:
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(sample_capture().read_bytes()[:50000])
    out = tmp_path / "o.parquet"
    assert main(["ingest", str(cut), "-o", str(out), "--on-error", "skip"]) == 0
    assert pq.read_metadata(out).num_rows == 621
    assert "skipped 1 record(s), 56 byte(s)" in capsys.readouterr().err


def test_debug_shows_traceback(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"garbage!" * 4)
    assert main(["ingest", str(bad), "-o", str(tmp_path / "o.parquet"), "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_existing_output_needs_overwrite(tmp_path: Path, capsys) -> None:
    out = tmp_path / "o.parquet"
    out.write_text("precious")
    assert main(["ingest", str(sample_capture()), "-o", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_text() == "precious"
    assert main(["ingest", str(sample_capture()), "-o", str(out), "--overwrite"]) == 0
    assert pq.read_metadata(out).num_rows == 896


def test_killed_ingest_leaves_no_output(tmp_path: Path) -> None:
    frames = frames_for(LINK_RAW) * 20000
    capture = tmp_path / "big.pcap"
    capture.write_bytes(write_pcap(frames, LINK_RAW))
    out = tmp_path / "o.parquet"
    proc = subprocess.Popen(
        [sys.executable, "-m", "darkscope.cli", "ingest", str(capture), "-o", str(out),
         "--batch-rows", "1000"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not any(p.name.startswith(".o.parquet.") for p in tmp_path.iterdir()):
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail("ingest finished or stalled before it started writing")
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()


def test_summary_counts_ipv4_and_ipv6_sources(tmp_path: Path, capsys) -> None:
    frames = frames_for(LINK_RAW)
    capture = tmp_path / "mixed.pcap"
    capture.write_bytes(write_pcap(frames, LINK_RAW))
    assert main(["ingest", str(capture), "-o", str(tmp_path / "o.parquet"), "--json",
                 "--batch-rows", "5"]) == 0
    table = packets.read(capture)
    distinct = {v for v in table.column("src").to_pylist() if v is not None} | \
        {v for v in table.column("src6").to_pylist() if v is not None}
    assert json.loads(capsys.readouterr().out)["sources"] == len(distinct)


def test_progress_in_a_pipe_is_plain_lines(tmp_path: Path) -> None:
    """--progress with stderr in a pipe: readable lines, no cursor codes, no blank line."""
    result = subprocess.run(
        [DARKSCOPE, "ingest", str(sample_capture()), "--progress", "-o",
         str(tmp_path / "p.parquet")], capture_output=True, text=True, check=True)
    lines = result.stderr.splitlines()
    assert lines and all(line.strip() for line in lines), result.stderr
    assert "\x1b" not in result.stderr
    assert any(line.startswith("ingest: ") and line.endswith(", done") and "(100%)" in line
               for line in lines), result.stderr
    quiet = subprocess.run(
        [DARKSCOPE, "ingest", str(sample_capture()), "-o", str(tmp_path / "q.parquet")],
        capture_output=True, text=True, check=True)
    assert quiet.stderr == ""


def test_line_progress_reports_while_running(capsys) -> None:
    from darkscope.progress import LineTracker

    tracker = LineTracker("mining", total=4, unit="days", every=0)
    tracker.advance(1)
    tracker.emit(final=True)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("mining: 1 days of 4 days (25%), ") and lines[0].endswith("running")
    assert lines[1].endswith("done")
