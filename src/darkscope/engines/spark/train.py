"""Training on Spark: the cluster computes what the packets give (features, judged vectors,
deciding rules: :func:`.detect.judged_windows`), the driver fits the model on the
host-windows, with the local engine's own :func:`darkscope.backscatter.training.fit_windows`.

The model's solvers are sequential and visit rows in order, so the windows reach the driver as
the local engine takes them: one online step per run of whole spans holding at least 4 M packets
(bounded driver memory: a step's windows, about 330 bytes each, and the model's work arrays),
each step's windows in order of their first packet (files in path order, rows in file order,
from Parquet's ``_metadata``). Both engines thus learn the same rows in the same steps and
order, up to where a step ends (the local engine cuts when its read batches reach 4 M
packets). The models are still not bit for bit alike: the features differ in their last digits
(Spark sums in another order), and a window on the confidence boundary may then be learnt as a
confident verdict by one engine and queued by the other (tests/engines/test_spark_train.py
measures the agreement on held-out traffic).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from darkscope.backscatter.features import NS, FeatureDefinition, HostWindows
from darkscope.backscatter.rules import RuleSet
from darkscope.backscatter.telescope import Telescope
from darkscope.backscatter.training import TrainingStep
from darkscope.engines.spark.detect import judged_windows, rule_labels

_POSITION = ("first_file", "first_row")


def training_steps(rows: Any, definition: FeatureDefinition, ruleset: RuleSet,
                   telescope: Telescope, chunk_rows: int = 1 << 22) -> Iterator[TrainingStep]:
    """The host-windows of ``rows`` (:func:`.packets.detector_rows` read with positions), one
    online step at a time as the local engine takes them: whole spans (the context span, or
    the window) of at least ``chunk_rows`` packets, each step's windows brought to the driver
    in order of their first packet."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    judged = judged_windows(rows, definition, ruleset, telescope)   # time windows only
    window_ns, span_ns = definition.window_s * NS, definition.chunk_s * NS
    first = rows.groupBy("host", (F.expr(f"ts div {window_ns}") * window_ns).alias(
        "window_start")).agg(F.min(F.struct(*_POSITION)).alias("first"))
    judged = judged.join(first, ["host", "window_start"]).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        spans = rows.groupBy(F.expr(f"ts div {span_ns}").alias("span")).count().orderBy(
            "span").collect()
        for low, high in _chunks([(r["span"], r["count"]) for r in spans], chunk_rows):
            part = judged.where((F.col("window_start") >= low * span_ns)
                                & (F.col("window_start") < (high + 1) * span_ns))
            table = part.orderBy("first.first_file", "first.first_row").drop("first").toArrow()
            yield TrainingStep(*host_windows(table, definition, ruleset))
    finally:
        judged.unpersist()


def _chunks(spans: list[tuple[int, int]], chunk_rows: int) -> Iterator[tuple[int, int]]:
    """First and last span of each run of consecutive spans holding ``chunk_rows`` packets
    or more (the last run: what is left)."""
    start, rows = None, 0
    for span, count in spans:
        start = span if start is None else start
        rows += count
        if rows >= chunk_rows:
            yield start, span
            start, rows = None, 0
    if start is not None:
        yield start, spans[-1][0]


def host_windows(table: pa.Table, definition: FeatureDefinition, ruleset: RuleSet
                 ) -> tuple[HostWindows, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One step's windows (a table in order of first packet) as the arguments of
    :func:`~darkscope.backscatter.training.fit_windows`: the windows, each one's deciding rule
    and its label, the judged vectors and the context packets."""
    names = definition.names

    def matrix(prefix: str) -> np.ndarray:
        if not table.num_rows:
            return np.empty((0, len(names)))
        return np.column_stack([table[f"{prefix}{n}"].to_numpy() for n in names]).astype(
            np.float64)

    is6 = pc.is_valid(table["src6"]).to_numpy(zero_copy_only=False)
    src6 = np.zeros((table.num_rows, 16), np.uint8)
    if is6.any():
        raw6 = b"".join(table["src6"].filter(pa.array(is6)).to_pylist())
        src6[is6] = np.frombuffer(raw6, np.uint8).reshape(-1, 16)
    host = pc.dictionary_encode(table["host"]).combine_chunks().indices.to_numpy()
    windows = HostWindows(
        src=table["src"].to_numpy().astype(np.uint32),
        window_start=table["window_start"].to_numpy().astype(np.int64),
        window_end=table["window_end"].to_numpy().astype(np.int64),
        packets=table["packets"].to_numpy().astype(np.int64), X=matrix(""),
        row_of_packet=np.empty(0, np.int64), definition=definition,
        host=host.astype(np.int64), is6=is6, src6=src6)
    rule_index = table["rule"].to_numpy().astype(np.int64)
    return (windows, rule_index, rule_labels(ruleset)[rule_index], matrix("judged_"),
            table["context_packets"].to_numpy().astype(np.int64))
