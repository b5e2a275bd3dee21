"""A model with short windows (several detection spans close in two hours of traffic), the
batch verdicts it gives on the held-out capture, and a writer that rotates captures."""

from __future__ import annotations

import gzip
import os
import struct
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from darkscope.backscatter import persist
from darkscope.backscatter.features import FeatureDefinition
from darkscope.backscatter.flow import detect
from darkscope.backscatter.inputs import read_packets
from darkscope.backscatter.rules import load_rules
from darkscope.backscatter.telescope import parse_telescope
from darkscope.backscatter.training import train

TELESCOPE = "203.0.0.0/16"
DARKSCOPE = str(Path(sys.executable).parent / "darkscope")
KEY = [("src", "ascending"), ("src6", "ascending"), ("window_start", "ascending")]


@pytest.fixture(scope="session")
def short_model(sim_train, tmp_path_factory) -> Path:
    """10-minute windows judged on 30-minute host context: a span closes every 30 minutes."""
    table = read_packets([sim_train.table])
    saved, _ = train(table, load_rules(), parse_telescope(TELESCOPE),
                     definition=FeatureDefinition(window_s=600, context_s=1800))
    return persist.save(saved, tmp_path_factory.mktemp("short-model") / "short")


@pytest.fixture(scope="session")
def batch_verdicts(short_model, sim_heldout) -> pa.Table:
    result = detect([sim_heldout.capture], persist.load(short_model), load_rules(), TELESCOPE)
    return result.verdicts.sort_by(KEY)


def monitor_verdicts(out: Path, columns: list[str]) -> pa.Table:
    table = ds.dataset(out / "verdicts", format="parquet", partitioning="hive").to_table()
    return table.select(columns).sort_by(KEY)


def assert_same_verdicts(got: pa.Table, want: pa.Table) -> None:
    """Equal tables, but for the last bits of ``confidence`` (BLAS rounds a span's matrix
    products and a whole file's differently; tests/backscatter/test_model.py bounds it)."""
    assert got.column_names == want.column_names and got.num_rows == want.num_rows
    others = [c for c in want.column_names if c != "confidence"]
    assert got.select(others).equals(want.select(others))
    assert np.allclose(got["confidence"].to_numpy(), want["confidence"].to_numpy(),
                       rtol=0, atol=1e-9)


def pcap_records(capture: Path) -> tuple[bytes, list[bytes]]:
    """The file header and each record of a little-endian pcap (test helper, not a reader)."""
    data = capture.read_bytes()
    records, at = [], 24
    while at < len(data):
        caplen = struct.unpack_from("<I", data, at + 8)[0]
        records.append(data[at:at + 16 + caplen])
        at += 16 + caplen
    return data[:24], records


@dataclass
class RotatingWriter:
    """Writes a capture as ``files`` rotating captures, each in small appends (as tcpdump -G
    would), optionally compressing each finished one the way `gzip x.pcap` does (the .gz
    grows, then the original disappears)."""

    capture: Path
    folder: Path
    files: int = 6
    pieces: int = 40
    pause_s: float = 0.01
    compress: bool = False

    def run(self) -> None:
        header, records = pcap_records(self.capture)
        per_file = -(-len(records) // self.files)
        for index in range(self.files):
            part = records[index * per_file:(index + 1) * per_file]
            path = self.folder / f"telescope-{index:03d}.pcap"
            with path.open("wb") as handle:
                handle.write(header)
                data = b"".join(part)
                step = -(-len(data) // self.pieces)
                for at in range(0, len(data), step):
                    handle.write(data[at:at + step])  # may cut a record: a reader must wait
                    handle.flush()
                    time.sleep(self.pause_s)
            if self.compress and index:
                self._compress(self.folder / f"telescope-{index - 1:03d}.pcap")
        if self.compress:
            self._compress(self.folder / f"telescope-{self.files - 1:03d}.pcap")

    def _compress(self, path: Path) -> None:
        packed = gzip.compress(path.read_bytes())
        target = path.with_name(path.name + ".gz")
        with target.open("wb") as handle:
            for at in range(0, len(packed), len(packed) // 3 + 1):
                handle.write(packed[at:at + len(packed) // 3 + 1])
                handle.flush()
                time.sleep(self.pause_s)
        os.unlink(path)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        return thread
