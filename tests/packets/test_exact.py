"""Every field of every packet equals an independent dpkt decoding, across formats and links."""

from __future__ import annotations

import gzip
import lzma
from pathlib import Path

import pytest
import zstandard

import darkscope.packets as packets

from .captures import (
    LINK_ETHERNET,
    LINK_IPV4,
    LINK_IPV6,
    LINK_NULL,
    LINK_RAW,
    LINK_SLL,
    LINK_SLL2,
    Frame,
    expected_ts,
    frames_for,
    write_pcap,
    write_pcapng,
)
from .reference import decode

ALL_LINKS = [LINK_ETHERNET, LINK_RAW, LINK_SLL, LINK_SLL2, LINK_NULL, LINK_IPV4, LINK_IPV6]


def assert_rows_match(table, frames: list[Frame], ts_of=lambda f: f.ts_ns) -> None:
    table.validate(full=True)  # null counts agree with the bitmaps, offsets are sound
    rows = table.drop_columns(["ts"]).to_pylist()
    stamps = table.column("ts").cast("int64").to_pylist()
    assert len(rows) == len(frames)
    for i, (row, frame) in enumerate(zip(rows, frames, strict=True)):
        expected = decode(frame.link, frame.data)
        expected.update(link_type=frame.link, cap_len=len(frame.data), wire_len=frame.orig_len)
        assert stamps[i] is not None
        assert stamps[i] // 1000 == ts_of(frame) // 1000, f"frame {i}: ts"
        for name, value in expected.items():
            assert row[name] == value, f"frame {i} (link {frame.link}): {name}: " \
                                       f"{row[name]!r} != {value!r}"
        assert set(row) == set(expected), f"frame {i}: unchecked fields"


@pytest.mark.parametrize("link", ALL_LINKS)
@pytest.mark.parametrize("big_endian,nanos", [(False, False), (True, True), (True, False)])
def test_pcap_every_field(tmp_path: Path, link: int, big_endian: bool, nanos: bool) -> None:
    frames = frames_for(link)
    path = tmp_path / "mixed.pcap"
    path.write_bytes(write_pcap(frames, link, big_endian=big_endian, nanos=nanos))
    table = packets.read(path)
    assert_rows_match(table, frames)
    if nanos:
        got = table.column("ts").cast("int64").to_pylist()
        assert got == [f.ts_ns for f in frames]


def test_pcap_nanosecond_timestamps_exact(tmp_path: Path) -> None:
    frames = frames_for(LINK_RAW)
    path = tmp_path / "ns.pcap"
    path.write_bytes(write_pcap(frames, LINK_RAW, nanos=True))
    ts = packets.read(path).column("ts").cast("int64").to_pylist()
    assert ts == [f.ts_ns for f in frames]


@pytest.mark.parametrize("big_endian", [False, True])
def test_pcapng_interfaces_links_and_resolutions(tmp_path: Path, big_endian: bool) -> None:
    interfaces = [(LINK_ETHERNET, None), (LINK_SLL, 9), (LINK_RAW, 0x80 | 20), (LINK_SLL2, 3),
                  (LINK_NULL, 6)]
    units = [(False, 6), (False, 9), (True, 20), (False, 3), (False, 6)]
    frames: list[tuple[int, Frame]] = []
    for iface, (link, _) in enumerate(interfaces):
        frames += [(iface, f) for f in frames_for(link)]
    frames.sort(key=lambda pair: pair[1].ts_ns)  # interleave interfaces
    path = tmp_path / "multi.pcapng"
    path.write_bytes(write_pcapng(interfaces, frames, big_endian=big_endian))
    table = packets.read(path)
    expected = {id(f): expected_ts(f.ts_ns, *units[i]) for i, f in frames}
    assert_rows_match(table, [f for _, f in frames], ts_of=lambda f: expected[id(f)])
    assert table.column("ts").cast("int64").to_pylist() == [expected[id(f)] for _, f in frames]


@pytest.mark.parametrize("compress", [gzip.compress, lzma.compress,
                                      lambda b: zstandard.ZstdCompressor().compress(b)])
def test_compressed_captures(tmp_path: Path, compress) -> None:
    frames = frames_for(LINK_ETHERNET)
    path = tmp_path / "capture.bin"  # name says nothing: formats are sniffed
    path.write_bytes(compress(write_pcap(frames, LINK_ETHERNET)))
    assert_rows_match(packets.read(path), frames)


def test_small_batches_and_buffers_cross_record_boundaries(tmp_path: Path) -> None:
    frames = frames_for(LINK_ETHERNET) * 5
    path = tmp_path / "x.pcap"
    path.write_bytes(write_pcap(frames, LINK_ETHERNET))
    reader = packets.CaptureReader(path, batch_rows=7, buffer_bytes=64)
    batches = list(reader)
    assert max(b.num_rows for b in batches) == 7
    import pyarrow as pa
    assert_rows_match(pa.Table.from_batches(batches), frames)
    assert reader.report.packets == len(frames)


@pytest.mark.parametrize("bare_first", [True, False])
def test_bare_syn_runs_beside_variable_data_in_one_batch(tmp_path: Path, bare_first: bool) -> None:
    """Rows without payload or options (bare SYNs) write no offsets, and a batch of only such
    rows shares a zero offsets buffer; a batch whose walker calls (one per small window) mix
    such runs with packets that have payloads and options must still get every offset right."""
    from scapy.all import IP, TCP, Ether, raw

    syn = raw(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(dport=23, flags="S"))
    bare = [Frame(LINK_ETHERNET, syn, 1_470_000_000_000_000_000 + i) for i in range(300)]
    rich = frames_for(LINK_ETHERNET) * 3
    frames = bare + rich + bare if bare_first else rich + bare + rich + bare
    path = tmp_path / "runs.pcap"
    path.write_bytes(write_pcap(frames, LINK_ETHERNET))
    table = packets.read(path)
    assert table.num_rows == len(frames)
    assert_rows_match(table, frames)
    import pyarrow as pa

    windowed = pa.Table.from_batches(list(packets.CaptureReader(path, buffer_bytes=4096)))
    assert windowed.num_rows == len(frames)
    assert_rows_match(windowed, frames)
    only_bare = tmp_path / "bare.pcap"
    only_bare.write_bytes(write_pcap(bare, LINK_ETHERNET))
    assert_rows_match(packets.read(only_bare), bare)


def test_pooled_memory_is_reused_only_once_its_table_is_gone(tmp_path: Path) -> None:
    """Batches are carved from pooled mappings: a table still held must keep its values while
    later reads run, and a read from reused memory (an earlier table's bytes in every slot)
    must come out exactly as from fresh memory."""
    import gc

    import pyarrow as pa

    from darkscope.packets import columns

    # every flag a bare SYN-ACK lacks (VLAN, options) set in the memory it will reuse, and a
    # bare row count that ends inside a bitmap byte (603 rows)
    rich = [f for f in frames_for(LINK_ETHERNET) if f.data[12:14] == b"\x81\x00"] * 1000
    bare = [Frame(LINK_RAW, f.data, f.ts_ns) for f in frames_for(LINK_RAW)[1:4]] * 201
    rich_path, bare_path = tmp_path / "rich.pcap", tmp_path / "bare.pcap"
    rich_path.write_bytes(write_pcap(rich, LINK_ETHERNET))
    bare_path.write_bytes(write_pcap(bare, LINK_RAW))
    held = packets.read(rich_path)
    assert len(rich) == 1000 and held.column("vlan").null_count == 0
    snapshot = held.to_pylist()
    for _ in range(3):
        dropped = packets.read(rich_path)
        del dropped
        gc.collect()
        pooled = sum(len(free) for free in columns._free_mappings.values())
        assert pooled >= 1  # the dropped table's mapping went back
        assert_rows_match(pa.Table.from_batches(list(packets.CaptureReader(bare_path))), bare)
    assert held.to_pylist() == snapshot


def test_directory_and_glob_in_natural_order(tmp_path: Path) -> None:
    frames = frames_for(LINK_RAW)
    chunks = [frames[i::3] for i in range(3)]
    for n, chunk in zip((2, 10, 1), chunks, strict=True):
        (tmp_path / f"trace.pcap{n}").write_bytes(write_pcap(chunk, LINK_RAW))
    (tmp_path / "README.txt").write_text("not a capture")
    by_dir = packets.read(tmp_path)
    order = chunks[2] + chunks[0] + chunks[1]  # pcap1, pcap2, pcap10
    assert_rows_match(by_dir, order)
    assert_rows_match(packets.read(str(tmp_path / "trace.pcap*")), order)


def test_parallel_decoding_of_large_batches(tmp_path: Path) -> None:
    """Enough rows per walker call that they are decoded in parallel chunks and compacted."""
    frames = (frames_for(LINK_ETHERNET) + frames_for(LINK_RAW)) * 200
    links = {f.link for f in frames}
    assert links == {LINK_ETHERNET, LINK_RAW}
    interfaces = [(LINK_ETHERNET, None), (LINK_RAW, 9)]
    pairs = [(0 if f.link == LINK_ETHERNET else 1, f) for f in frames]
    path = tmp_path / "many.pcapng"
    path.write_bytes(write_pcapng(interfaces, pairs, unknown_blocks=False))
    table = packets.read(path)
    assert table.num_rows > 4096 * 2
    assert_rows_match(table, frames, ts_of=lambda f: f.ts_ns)


def test_readers_in_several_threads(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    frames = frames_for(LINK_ETHERNET) * 400
    path = tmp_path / "t.pcap"
    path.write_bytes(write_pcap(frames, LINK_ETHERNET))
    expected = packets.read(path)
    with ThreadPoolExecutor(4) as pool:
        tables = list(pool.map(lambda _: packets.read(path), range(4)))
    assert all(t.equals(expected) for t in tables)


def test_streaming_recycles_dropped_batches_only(tmp_path: Path, monkeypatch) -> None:
    import darkscope.packets.reader as reader_module

    frames = frames_for(LINK_ETHERNET) * 40
    path = tmp_path / "s.pcap"
    path.write_bytes(write_pcap(frames, LINK_ETHERNET))
    expected = packets.read(path)
    made = []
    original = reader_module.Columns

    def counting(capacity: int, scratch):
        made.append(capacity)
        return original(capacity, scratch)

    monkeypatch.setattr(reader_module, "Columns", counting)
    kept, offset = [], 0
    for i, batch in enumerate(packets.CaptureReader(path, batch_rows=50)):
        if i % 3 == 0:
            kept.append((offset, batch))  # held: its memory must never be reused
        offset += batch.num_rows
    for start, batch in kept:
        assert batch.equals(expected.slice(start, batch.num_rows).to_batches()[0])
    batches = -(-len(frames) // 50)
    assert len(made) < batches  # dropped batches' columns were reused
    made.clear()
    for _batch in packets.CaptureReader(path, batch_rows=50):
        pass
    assert len(made) <= 3


def test_pcapng_simple_and_obsolete_packet_blocks_and_tsoffset(tmp_path: Path) -> None:
    import struct

    from .captures import _block, _option

    frames = frames_for(LINK_RAW)[:3]
    order = "<"
    shb = _block(order, 0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb = _block(order, 1, struct.pack("<HHI", LINK_RAW, 0, 0)
                 + _option(order, 14, struct.pack("<q", 100)) + _option(order, 0, b""))
    ticks = frames[0].ts_ns // 1000
    epb = _block(order, 6, struct.pack("<IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF,
                                       len(frames[0].data), len(frames[0].data)) + frames[0].data)
    spb = _block(order, 3, struct.pack("<I", len(frames[1].data)) + frames[1].data)
    ticks2 = frames[2].ts_ns // 1000
    opb = _block(order, 2, struct.pack("<HHIIII", 0, 0, ticks2 >> 32, ticks2 & 0xFFFFFFFF,
                                       len(frames[2].data), len(frames[2].data)) + frames[2].data)
    path = tmp_path / "blocks.pcapng"
    path.write_bytes(shb + idb + epb + spb + opb)
    table = packets.read(path)
    assert_rows_match(table.filter([True, False, True]), [frames[0], frames[2]],
                      ts_of=lambda f: f.ts_ns + 100 * 10**9)
    ts = table.column("ts").cast("int64").to_pylist()
    assert ts[1] is None  # simple packet blocks carry no timestamp
    assert table.column("src").to_pylist()[1] == decode(LINK_RAW, frames[1].data)["src"]
