from pathlib import Path

import pyarrow.parquet as pq

from darkscope.cli import main


def test_demo_ingests_builtin_capture(tmp_path: Path, capsys) -> None:
    assert main(["demo", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "896 packets from 60 sources" in out
    assert "75.136.225.254:21     396 SYN-ACK" in out
    assert pq.read_metadata(tmp_path / "packets.parquet").num_rows == 896
    truth = pq.read_table(tmp_path / "truth.parquet")
    assert f"{truth.num_rows:,} hosts" in out
    assert "backscatter" in out and "mirai" in out
