"""Training on Spark: the cluster computes what the packets give (features, judged vectors,
deciding rules: :func:`.detect.judged_windows`), the driver fits the model on the
host-windows, with the local engine's own :func:`darkscope.backscatter.training.fit_windows`.

The model's solvers are sequential and visit rows in order, so the windows reach the driver in
the local engine's order: each host-window's first packet in input order (files in path order,
rows in file order, from Parquet's ``_metadata``). On an input the local engine trains in one
step (up to its chunk of 4 M packets) both engines thus learn the same rows in the same order.
The models are still not bit for bit alike: the features differ in their last digits (Spark
sums in another order), and a window on the confidence boundary may then be learnt as a
confident verdict by one engine and queued by the other (tests/engines/test_spark_train.py
measures the agreement on held-out traffic). On larger inputs the local engine takes one
online step per chunk to bound its memory, while Spark fits all windows at once; the driver
must hold them (about 330 bytes per host-window: the 4 M windows of a /16's simulated day are
1.3 GB; raise ``spark.driver.memory`` and ``spark.driver.maxResultSize``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from darkscope.backscatter.features import FeatureDefinition, HostWindows
from darkscope.backscatter.rules import NO_RULE, RuleSet
from darkscope.backscatter.telescope import Telescope
from darkscope.engines.spark.detect import judged_windows

_POSITION = ("first_file", "first_row")


def training_windows(rows: Any, definition: FeatureDefinition, ruleset: RuleSet,
                     telescope: Telescope) -> pa.Table:
    """The host-windows of ``rows`` (:func:`.packets.detector_rows` read with positions) on
    the driver, in order of their first packet: identity, features, judged vectors,
    ``context_packets`` and ``rule``."""
    from pyspark.sql import functions as F

    judged = judged_windows(rows, definition, ruleset, telescope)   # time windows only
    span = definition.window_s * 1_000_000_000
    first = rows.groupBy("host", (F.expr(f"ts div {span}") * span).alias("window_start")).agg(
        F.min(F.struct(*_POSITION)).alias("first"))
    judged = judged.join(first, ["host", "window_start"])
    return judged.orderBy("first.first_file", "first.first_row").drop("first").toArrow()


def host_windows(table: pa.Table, definition: FeatureDefinition, ruleset: RuleSet
                 ) -> tuple[HostWindows, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`training_windows`' table as the arguments of
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
    labels = np.array([1 if r.label == "ddos" else 0 for r in ruleset.rules] + [-1], np.int64)
    rule_label = np.where(rule_index == NO_RULE, -1, labels[rule_index])
    return (windows, rule_index, rule_label, matrix("judged_"),
            table["context_packets"].to_numpy().astype(np.int64))
