"""The Spark engine's 17 features equal the local engine's, window by window: on the held-out
day as `darkscope ingest` writes it (Hive partitions by hour), and on a dual-stack table whose
IPv6 hosts are IPv4 hosts moved to addresses of their own."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from darkscope.backscatter.features import FeatureDefinition, context_features, extract
from darkscope.backscatter.inputs import read_packets
from darkscope.engines.spark import features, packets


def _local(table: pa.Table, definition: FeatureDefinition) -> dict[tuple[str, int], dict]:
    windows = extract(table, definition)
    judged, context = context_features(table, windows)
    out = {}
    for i in range(len(windows)):
        host = (windows.src6[i].tobytes().hex() if windows.is6[i] else str(windows.src[i]))
        out[(host, int(windows.window_start[i]))] = {
            "packets": int(windows.packets[i]), "window_end": int(windows.window_end[i]),
            "X": windows.X[i], "judged": judged[i], "context": int(context[i])}
    return out


def _spark(spark, paths: list[str], definition: FeatureDefinition
           ) -> dict[tuple[str, int], dict]:
    rows = packets.detector_rows(packets.read(spark, paths))
    made = features.judged(rows, features.host_windows(rows, definition), definition)
    frame = made.toArrow().to_pandas()
    names = list(definition.names)
    X = frame[names].to_numpy()
    J = frame[[f"judged_{n}" for n in names]].to_numpy()
    return {(h, int(s)): {"packets": int(p), "window_end": int(e), "X": X[i], "judged": J[i],
                          "context": int(c)}
            for i, (h, s, p, e, c) in enumerate(zip(
                frame["host"], frame["window_start"], frame["packets"], frame["window_end"],
                frame["context_packets"], strict=True))}


def _same(local: dict, spark: dict) -> None:
    assert local.keys() == spark.keys()
    for key, mine in local.items():
        theirs = spark[key]
        assert (mine["packets"], mine["window_end"], mine["context"]) == \
            (theirs["packets"], theirs["window_end"], theirs["context"]), key
        np.testing.assert_allclose(theirs["X"], mine["X"], rtol=1e-9, atol=1e-9,
                                   err_msg=str(key))
        np.testing.assert_allclose(theirs["judged"], mine["judged"], rtol=1e-9, atol=1e-9,
                                   err_msg=str(key))


def test_features_of_an_ingested_day_equal_the_local_engine(spark, ingested):
    definition = FeatureDefinition()
    local = _local(read_packets(ingested), definition)
    assert any(w["context"] for w in local.values())   # sparse windows judged on context
    _same(local, _spark(spark, [str(ingested)], definition))
    short = FeatureDefinition(window_s=600, variant="payload", context_s=None)
    _same(_local(read_packets(ingested), short), _spark(spark, [str(ingested)], short))


def _dual_stack(table: pa.Table) -> pa.Table:
    """Every fifth IPv4 source host moved to IPv6: 2001:db8::<a.b.c.d> as source, and its
    destinations to /64s 2001:db8:ab:<c.d>::1 (one /64 per IPv4 destination)."""
    src = table["src"].to_numpy().astype(np.uint64)
    moved = src % np.uint64(5) == 0
    n = table.num_rows

    def six(prefix: bytes, values: np.ndarray, place: slice) -> pa.Array:
        matrix = np.zeros((n, 16), np.uint8)
        matrix[:, :len(prefix)] = np.frombuffer(prefix, np.uint8)
        matrix[:, place] = values.astype(">u4").view(np.uint8).reshape(n, 4)
        matrix[:, 15] |= 1
        return pa.array([bytes(r) if m else None for r, m in zip(matrix, moved, strict=True)],
                        pa.binary(16))

    dst = table["dst"].to_numpy().astype(np.uint64)
    columns = {name: table[name] for name in table.column_names}
    columns.update(src=pa.array(np.where(moved, 0, src), pa.uint32(), mask=moved),
                   dst=pa.array(np.where(moved, 0, dst), pa.uint32(), mask=moved),
                   src6=six(bytes.fromhex("20010db8"), src, slice(8, 12)),
                   dst6=six(bytes.fromhex("20010db800ab"), dst, slice(4, 8)))
    return pa.table(columns)


def test_ipv6_hosts_get_the_same_features_on_both_engines(spark, sim_heldout, tmp_path):
    mixed = _dual_stack(read_packets(sim_heldout.table))
    assert pc.sum(pc.is_valid(mixed["src6"])).as_py() > 0
    path = tmp_path / "dual-stack.parquet"
    pq.write_table(mixed, path)
    definition = FeatureDefinition()
    local = _local(mixed, definition)
    assert sum(len(host) == 32 for host, _ in local) > 10
    _same(local, _spark(spark, [str(path)], definition))


def test_packet_count_windows_are_refused_with_the_reason(spark, sim_heldout):
    from darkscope.errors import UsageError

    rows = packets.detector_rows(packets.read(spark, [str(sim_heldout.table)]))
    with pytest.raises(UsageError, match="--window-packets"):
        features.host_windows(rows, FeatureDefinition(window_s=None, window_packets=100))
