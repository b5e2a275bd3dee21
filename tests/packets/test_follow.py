"""Reading captures while they are written: every packet once, across restarts."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import pyarrow as pa
import pytest

from darkscope import packets
from darkscope.data import sample_capture
from darkscope.errors import CaptureFormatError
from darkscope.packets.follow import CaptureFollower, FollowPosition

PCAPNG = Path(sample_capture()).parent / "icmp_traceroute.pcapng"


def _grow_and_follow(source: Path, target: Path, seed: int, restart_every: float) -> pa.Table:
    """Append ``source`` to ``target`` in random pieces, reading after each and sometimes
    resuming in a new follower from the saved position (as after a restart)."""
    data = source.read_bytes()
    rng = random.Random(seed)
    target.write_bytes(b"")
    follower = CaptureFollower(target, max_bytes=4096)
    got: list[pa.RecordBatch] = []
    written = 0
    while written < len(data):
        piece = rng.randint(1, max(64, len(data) // 30))
        with target.open("ab") as handle:
            handle.write(data[written:written + piece])
        written += piece
        if rng.random() < restart_every:
            saved = FollowPosition(follower.position.offset, follower.position.header)
            follower = CaptureFollower(target, saved, max_bytes=4096)
        while True:
            got += follower.read()
            if follower.caught_up:
                break
    assert follower.position.offset == len(data)
    return pa.Table.from_batches(got, schema=packets.PACKET_SCHEMA)


@pytest.mark.parametrize("source", [Path(sample_capture()), PCAPNG], ids=["pcap", "pcapng"])
def test_a_growing_capture_is_read_once_whatever_the_pieces(tmp_path: Path, source: Path) -> None:
    whole = packets.read(source)
    for seed in range(3):
        followed = _grow_and_follow(source, tmp_path / f"live{source.suffix}", seed, 0.3)
        assert followed.equals(whole), seed


def test_a_compressed_capture_resumes_at_its_position(tmp_path: Path) -> None:
    source = Path(sample_capture())
    packed = tmp_path / "done.pcap.gz"
    packed.write_bytes(gzip.compress(source.read_bytes()))
    whole = packets.read(source)
    first = CaptureFollower(packed, max_bytes=20_000)
    head = pa.Table.from_batches(first.read(), schema=packets.PACKET_SCHEMA)
    assert not first.caught_up and 0 < head.num_rows < whole.num_rows
    rest = CaptureFollower(packed, first.position)
    tail = pa.Table.from_batches(rest.read(), schema=packets.PACKET_SCHEMA)
    assert rest.caught_up and pa.concat_tables([head, tail]).equals(whole)


def test_corrupt_records_are_skipped_and_reported(tmp_path: Path) -> None:
    data = bytearray(Path(sample_capture()).read_bytes())
    data[24 + 8: 24 + 12] = (10_000_000).to_bytes(4, "little")  # first record: absurd caplen
    live = tmp_path / "live.pcap"
    live.write_bytes(bytes(data))
    follower = CaptureFollower(live)
    table = pa.Table.from_batches(follower.read(), schema=packets.PACKET_SCHEMA)
    assert 0 < table.num_rows < packets.read(sample_capture()).num_rows
    problem = follower.report.problems[0]
    assert isinstance(problem, CaptureFormatError) and problem.offset == 24
    assert follower.position.offset == len(data)
    # resumed from a saved position, a problem is still named by its offset in the file
    resumed = bytearray(Path(sample_capture()).read_bytes())
    first_len = int.from_bytes(resumed[24 + 8:24 + 12], "little")
    bad_at = 24 + 16 + first_len
    resumed[bad_at + 8:bad_at + 12] = (10_000_000).to_bytes(4, "little")
    live.write_bytes(bytes(resumed))
    follower = CaptureFollower(live, FollowPosition(bad_at, bytes(resumed[:24])))
    follower.read()
    assert follower.report.problems[0].offset == bad_at


def test_nothing_but_a_partial_header_waits(tmp_path: Path) -> None:
    live = tmp_path / "live.pcap"
    live.write_bytes(Path(sample_capture()).read_bytes()[:10])
    follower = CaptureFollower(live)
    assert follower.read() == [] and follower.caught_up and follower.position.offset == 0
    not_a_capture = tmp_path / "notes.pcap"
    not_a_capture.write_bytes(b"hello world, not a capture at all")
    with pytest.raises(CaptureFormatError, match="not a pcap or pcapng"):
        CaptureFollower(not_a_capture).read()
