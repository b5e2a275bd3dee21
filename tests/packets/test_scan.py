from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

import darkscope.packets as packets
from darkscope.cli import main
from darkscope.data import sample_capture
from darkscope.errors import InputFormatError


def test_scan_reads_captures_files_and_hour_datasets_alike(tmp_path: Path) -> None:
    capture = sample_capture()
    single, by_hour = tmp_path / "p.parquet", tmp_path / "hours"
    assert main(["ingest", str(capture), "-o", str(single)]) == 0
    assert main(["ingest", str(capture), "-o", str(by_hour)]) == 0
    expected = packets.read(capture).select(["src", "sport", "tcp_flags"])
    for source in (capture, single, by_hour):
        got = pa.Table.from_batches(list(packets.scan(source, columns=["src", "sport",
                                                                      "tcp_flags"])))
        assert got.equals(expected), source
    mixed = pa.Table.from_batches(list(packets.scan([single, capture], columns=["src"])))
    assert mixed.num_rows == 2 * expected.num_rows


def test_scan_rejects_parquet_that_is_not_a_packet_table(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), other)
    with pytest.raises(InputFormatError, match="missing column"):
        list(packets.scan(other))
