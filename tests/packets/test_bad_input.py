"""Corrupt and truncated captures: clear errors with file and offset, or skip and keep the rest."""

from __future__ import annotations

import struct
from pathlib import Path

import pyarrow as pa
import pytest

import darkscope.packets as packets
from darkscope.data import sample_capture
from darkscope.errors import CaptureFormatError, UsageError

from .captures import LINK_ETHERNET, LINK_RAW, frames_for, write_pcap, write_pcapng


def test_truncated_last_record(tmp_path: Path) -> None:
    data = sample_capture().read_bytes()[:50000]  # cut inside record 622
    path = tmp_path / "cut.pcap"
    path.write_bytes(data)
    with pytest.raises(CaptureFormatError) as info:
        packets.read(path)
    assert info.value.offset == 49944
    assert "truncated" in str(info.value) and str(path) in str(info.value)
    reader = packets.CaptureReader(path, on_error="skip")
    assert sum(b.num_rows for b in reader) == 621
    assert reader.report.skipped_records == 1
    assert reader.report.skipped_bytes == 50000 - 49944


def test_record_longer_than_snaplen_resynchronises(tmp_path: Path) -> None:
    frames = frames_for(LINK_RAW)
    good = write_pcap(frames, LINK_RAW, snaplen=200)
    # Corrupt the third record's captured length; the records after it must still be found.
    offset = 24 + sum(16 + len(f.data) for f in frames[:2])
    bad = bytearray(good)
    bad[offset + 8: offset + 12] = struct.pack("<I", 5000)
    path = tmp_path / "snap.pcap"
    path.write_bytes(bytes(bad))
    with pytest.raises(CaptureFormatError, match="exceeds the snap length") as info:
        packets.read(path)
    assert info.value.offset == offset
    reader = packets.CaptureReader(path, on_error="skip")
    assert sum(b.num_rows for b in reader) == len(frames) - 1
    assert reader.report.skipped_bytes == 16 + len(frames[2].data)


def test_garbage_header_and_empty_file(tmp_path: Path) -> None:
    garbage = tmp_path / "notes.pcap"
    garbage.write_bytes(b"hello, this is not a capture at all")
    with pytest.raises(CaptureFormatError, match="not a pcap or pcapng capture") as info:
        packets.read(garbage)
    assert info.value.offset == 0
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    with pytest.raises(CaptureFormatError, match="empty file"):
        packets.read(empty)


def test_unknown_link_type(tmp_path: Path) -> None:
    path = tmp_path / "user0.pcap"
    path.write_bytes(write_pcap(frames_for(LINK_RAW), 147))
    with pytest.raises(CaptureFormatError, match="unsupported link type 147"):
        packets.read(path)


def test_corrupt_pcapng_block_skips_only_that_block(tmp_path: Path) -> None:
    frames = frames_for(LINK_ETHERNET)
    data = bytearray(write_pcapng([(LINK_ETHERNET, None)], [(0, f) for f in frames],
                                  unknown_blocks=False))
    # Find the fifth enhanced packet block and break its trailing length.
    pos, seen = 0, 0
    while True:
        btype, blen = struct.unpack("<II", data[pos:pos + 8])
        if btype == 6:
            seen += 1
            if seen == 5:
                break
        pos += blen
    data[pos + blen - 4: pos + blen] = struct.pack("<I", blen + 8)
    path = tmp_path / "corrupt.pcapng"
    path.write_bytes(bytes(data))
    with pytest.raises(CaptureFormatError, match="trailing length") as info:
        packets.read(path)
    assert info.value.offset == pos
    reader = packets.CaptureReader(path, on_error="skip")
    assert sum(b.num_rows for b in reader) == len(frames) - 1
    assert reader.report.skipped_bytes == blen


def test_invalid_nanosecond_fractions_are_rejected() -> None:
    path = sample_capture("tcpdump_timestamp_invalid_nano_sll.pcap")
    with pytest.raises(CaptureFormatError, match="fraction") as info:
        packets.read(path)
    assert info.value.offset == 116
    reader = packets.CaptureReader(path, on_error="skip")
    table = list(reader)
    assert sum(b.num_rows for b in table) == 1
    assert reader.report.skipped_records == 2


def test_corrupt_fuzz_record_from_ndpi(shared_data: Path) -> None:
    path = shared_data / "pcaps" / "ndpi__fuzz-2021-06-07-c6c72a0a56_corrupt.pcap"
    with pytest.raises(CaptureFormatError) as info:
        packets.read(path)
    assert info.value.offset == 24


def test_compressed_stream_truncated(tmp_path: Path) -> None:
    import gzip
    blob = gzip.compress(write_pcap(frames_for(LINK_RAW), LINK_RAW))
    path = tmp_path / "cut.pcap.gz"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CaptureFormatError, match="gzip stream is corrupt or truncated"):
        packets.read(path)


def test_missing_input_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        packets.read(tmp_path / "nope.pcap")
    with pytest.raises(UsageError, match="no file matches"):
        packets.read(str(tmp_path / "*.pcap"))


@pytest.mark.parametrize("window", [64, 4096, 1 << 24])
def test_mapped_and_copied_reads_agree_on_damaged_input(tmp_path: Path, window: int) -> None:
    """Plain files are read through mapped windows, compressed ones through a copying buffer:
    both must keep the same packets and report the same skips, whatever the window size."""
    import gzip

    frames = frames_for(LINK_ETHERNET) * 30
    good = bytearray(write_pcap(frames, LINK_ETHERNET, snaplen=300))
    for index in (5, 40):  # two records with absurd captured lengths: resynchronise twice
        offset = 24 + sum(16 + len(f.data) for f in frames[:index])
        good[offset + 8: offset + 12] = struct.pack("<I", 70000)
    damaged = bytes(good[:-7])  # and a truncated last record
    plain, packed = tmp_path / "d.pcap", tmp_path / "d.pcap.gz"
    plain.write_bytes(damaged)
    packed.write_bytes(gzip.compress(damaged))
    results = []
    for path in (plain, packed):
        reader = packets.CaptureReader(path, on_error="skip", buffer_bytes=window)
        table = pa.Table.from_batches(list(reader), schema=packets.PACKET_SCHEMA)
        results.append((table, reader.report))
    (mapped, mapped_report), (copied, copied_report) = results
    assert mapped.num_rows == len(frames) - 3
    assert mapped.equals(copied)
    assert (mapped_report.skipped_records, mapped_report.skipped_bytes) == (
        copied_report.skipped_records, copied_report.skipped_bytes)
    assert len(mapped_report.problems) == 3
    assert [(p.offset, str(p)) for p in mapped_report.problems] == [
        (p.offset, str(p).replace("d.pcap.gz", "d.pcap")) for p in copied_report.problems]


def test_capture_being_written_is_copied_and_survives_truncation(tmp_path: Path) -> None:
    """A capture that a process still holds open for writing may be truncated under the
    reader (copytruncate rotation): mapped, its vanished pages would kill the process with
    SIGBUS, so it is read through a copy and the truncation is a reported, clean end."""
    from darkscope.packets.reader import _Buffer, _MappedBuffer, _open_buffer
    from darkscope.packets.sources import CaptureStream

    frames = frames_for(LINK_ETHERNET) * 400
    data = write_pcap(frames, LINK_ETHERNET, snaplen=300)
    path = tmp_path / "live.pcap"
    path.write_bytes(data)
    with CaptureStream(path) as stream:
        assert type(_open_buffer(stream, 1 << 16)) is _MappedBuffer  # nobody writes it
    with open(path, "r+b") as writer:
        with CaptureStream(path) as stream:
            assert type(_open_buffer(stream, 1 << 16)) is _Buffer
        reader = packets.CaptureReader(path, on_error="skip", batch_rows=100,
                                       buffer_bytes=4096)
        batches = iter(reader)
        first = next(batches)
        cut = len(data) // 2
        writer.truncate(cut)  # copytruncate empties it; cutting mid-file is the harder case
        rest = list(batches)
    kept = first.num_rows + sum(b.num_rows for b in rest)
    whole = next(i for i in range(len(frames) + 1)
                 if 24 + sum(16 + len(f.data) for f in frames[:i + 1]) > cut)
    assert kept == whole
    assert [p.offset for p in reader.report.problems] == [
        24 + sum(16 + len(f.data) for f in frames[:whole])]
    assert "file ends inside a record" in str(reader.report.problems[0])


def test_simple_packet_block_too_short_for_its_length_field(tmp_path: Path) -> None:
    """A 12-byte Simple Packet Block has no room for its original length: it is a corrupt
    block (its captured length would come out negative and the decoder read past it)."""
    frames = frames_for(LINK_RAW)[:3]
    head = write_pcapng([(LINK_RAW, None)], [(0, f) for f in frames], unknown_blocks=False)
    tail = write_pcapng([(LINK_RAW, None)], [(0, f) for f in frames], unknown_blocks=False)
    path = tmp_path / "spb.pcapng"
    path.write_bytes(head + struct.pack("<III", 3, 12, 12) + tail)
    with pytest.raises(CaptureFormatError, match="too small for its type") as info:
        packets.read(path)
    assert info.value.offset == len(head)
    reader = packets.CaptureReader(path, on_error="skip")
    table = pa.Table.from_batches(list(reader), schema=packets.PACKET_SCHEMA)
    assert table.num_rows == 6 and max(table["cap_len"].to_pylist()) < 200
    assert reader.report.skipped_bytes == 12


_LEASE_RACE = """
import os, sys, time
from darkscope.packets.reader import _has_writers
fd = os.open(sys.argv[1], os.O_RDONLY)
seen = set()
end = time.monotonic() + 2.0
while time.monotonic() < end:
    seen.add(_has_writers(fd))
print(sorted(map(str, seen)))
"""

_WRITER_LOOP = """
import os, sys, time
end = time.monotonic() + 3.0
while time.monotonic() < end:
    os.close(os.open(sys.argv[1], os.O_WRONLY))
"""


def test_writer_opening_during_the_lease_test_does_not_kill_the_reader(tmp_path: Path) -> None:
    """The lease that tells whether a capture is being written is broken by a writer that
    opens the file in between; the break signal must not be SIGIO, which kills a process."""
    import subprocess
    import sys

    path = tmp_path / "busy.pcap"
    path.write_bytes(b"x" * 100)
    writer = subprocess.Popen([sys.executable, "-c", _WRITER_LOOP, str(path)])
    try:
        done = subprocess.run([sys.executable, "-c", _LEASE_RACE, str(path)],
                              capture_output=True, text=True, timeout=60)
    finally:
        writer.kill()
        writer.wait()
    assert done.returncode == 0, f"reader died: exit {done.returncode} {done.stderr[-300:]}"
    assert done.stdout.strip() in ("['False', 'True']", "['None']")  # raced, or no leases here


@pytest.mark.parametrize("big_endian", [False, True])
def test_two_half_scan_equals_the_serial_scan(tmp_path: Path, big_endian: bool) -> None:
    """Buffers of 1 MiB or more are scanned in two halves at once, the second from a guessed
    record boundary. Frames full of zero padding and header-like bytes, bad records in either
    half and batches that fill up inside the second half must give exactly what the serial
    scan (small buffers) gives."""
    frames = frames_for(LINK_ETHERNET) * 1000  # 26,000 mixed frames, 2.3 MB
    data = bytearray(write_pcap(frames, LINK_ETHERNET, snaplen=300, big_endian=big_endian))
    order = ">I" if big_endian else "<I"
    offsets = [24]
    for frame in frames:
        offsets.append(offsets[-1] + 16 + len(frame.data))
    # the first call's first half stops at 10 %; the next call's halves meet, its second half
    # stops at 80 % (or, with 20,000-row batches, the batch fills up before); the tail is short
    for index in (len(frames) // 10, len(frames) * 8 // 10, len(frames) - 50):
        data[offsets[index] + 8: offsets[index] + 12] = struct.pack(order, 70000)
    path = tmp_path / "big.pcap"
    path.write_bytes(bytes(data))
    results = []
    for buffer_bytes, batch_rows in ((1 << 16, 1 << 19), (1 << 24, 1 << 19), (1 << 24, 20000)):
        reader = packets.CaptureReader(path, on_error="skip", buffer_bytes=buffer_bytes,
                                       batch_rows=batch_rows)
        table = pa.Table.from_batches(list(reader), schema=packets.PACKET_SCHEMA)
        results.append((table, [(p.offset, str(p)) for p in reader.report.problems],
                        reader.report.skipped_bytes))
    serial = results[0]
    # (resynchronising may take a plausible-looking fragment of a bad record for a record)
    assert serial[0].num_rows >= len(frames) - 3 and len(serial[1]) == 3
    for table, problems, skipped in results[1:]:
        assert table.equals(serial[0])
        assert (problems, skipped) == serial[1:]
