"""The decision flow of :func:`darkscope.backscatter.flow.decide` on Spark.

Features and rules are Spark SQL (:mod:`.features`, :mod:`.rules`); the trained model is
broadcast once to the executors and judges each partition's host-windows as Arrow batches
(``mapInArrow``), with the same numpy code the local engine runs. Experts' standing labels,
few next to the windows, are a small table joined in. The result has the local engine's
verdict columns (:func:`verdict_table` turns the window times, nanoseconds here, into Spark
timestamps of microseconds: windows start on whole seconds, so nothing is lost).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from darkscope.backscatter.features import FeatureDefinition
from darkscope.backscatter.flow import BY_EXPERT, BY_MODEL, VERDICTS
from darkscope.backscatter.model import REVIEW
from darkscope.backscatter.persist import SavedModel
from darkscope.backscatter.rules import NO_RULE, RuleSet
from darkscope.backscatter.telescope import Telescope
from darkscope.engines.spark import features, rules
from darkscope.store import Label, ReviewStore


def _judge(batches: Iterator[pa.RecordBatch], model: Any, names: tuple[str, ...],
           rule_labels: np.ndarray) -> Iterator[pa.RecordBatch]:
    """Per batch of host-windows: the rule's label where one decided, else the model's
    verdict, confidence and gate on the judged vector; the IPv6 source as text."""
    for batch in batches:
        rule = batch.column("rule").to_numpy(zero_copy_only=False)
        n = batch.num_rows
        verdict = rule_labels[rule]           # NO_RULE indexes the trailing -1
        confidence = np.ones(n)
        outlier = np.zeros(n, bool)
        open_rows = np.flatnonzero(rule == NO_RULE)
        if open_rows.size:
            X = np.column_stack([batch.column(f"judged_{name}").to_numpy(
                zero_copy_only=False) for name in names])[open_rows]
            v, c, o = model.value.decide(X)
            verdict[open_rows], confidence[open_rows], outlier[open_rows] = v, c, o
        src6 = [None if raw is None else str(ipaddress.IPv6Address(raw))
                for raw in batch.column("src6").to_pylist()]
        yield pa.RecordBatch.from_arrays(
            [*batch.columns, pa.array(verdict, pa.int64()), pa.array(confidence),
             pa.array(outlier), pa.array(src6, pa.string())],
            names=[*batch.schema.names, "model_verdict", "confidence", "outlier",
                   "src6_text"])


def _labels(spark: Any, labels: dict[tuple[int, int | None], Label] | None) -> tuple[Any, Any]:
    """The standing labels as two small tables: per (src, window_start) and per src."""
    from pyspark.sql.types import LongType, StructField, StructType

    def table(rows: list[tuple[int, ...]], columns: list[str]) -> Any:
        schema = StructType([StructField(c, LongType()) for c in columns])
        return spark.createDataFrame(rows, schema)

    items = (labels or {}).items()
    own = [(s, w, int(lab.label == "ddos")) for (s, w), lab in items if w is not None]
    host = [(s, int(lab.label == "ddos")) for (s, w), lab in items if w is None]
    return (table(own, ["label_src", "label_window", "window_label"]),
            table(host, ["label_src", "host_label"]))


def rule_labels(ruleset: RuleSet) -> np.ndarray:
    """Each rule's label (1: DDoS), and -1 last, where ``NO_RULE`` (-1) indexes."""
    return np.array([1 if r.label == "ddos" else 0 for r in ruleset.rules] + [-1], np.int64)


def judged_windows(rows: Any, definition: FeatureDefinition, ruleset: RuleSet,
                   telescope: Telescope) -> Any:
    """Per host-window: the features, the judged vector (``judged_<feature>``),
    ``context_packets`` and ``rule`` (the deciding rule's index, or ``NO_RULE``)."""
    windows = features.host_windows(rows, definition)
    return features.judged(rows, windows, definition).join(
        rules.deciding_rules(rows, ruleset, telescope, definition.window_s),
        ["host", "window_start"])


def decide(spark: Any, rows: Any, saved: SavedModel, ruleset: RuleSet, telescope: Telescope,
           labels: dict[tuple[int, int | None], Label] | None = None) -> Any:
    """Verdicts for the host-windows of ``rows`` (:func:`.packets.detector_rows`): src (null
    for IPv6), window_start, window_end (ns), packets, the features, verdict, decided_by,
    confidence, context_packets (null: own features judged), src6 (text) and outlier (the
    gate objected; for the review queue)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import (
        BooleanType,
        DoubleType,
        LongType,
        StringType,
        StructField,
        StructType,
    )

    definition = saved.definition
    judged = judged_windows(rows, definition, ruleset, telescope)
    by_rule = rule_labels(ruleset)
    model = spark.sparkContext.broadcast(saved.model)
    schema = StructType([*judged.schema.fields, *(StructField(name, kind) for name, kind in (
        ("model_verdict", LongType()), ("confidence", DoubleType()), ("outlier", BooleanType()),
        ("src6_text", StringType())))])
    names = definition.names
    judged = judged.mapInArrow(lambda batches: _judge(batches, model, names, by_rule),
                               schema)
    own, host = _labels(spark, labels)
    is4 = F.col("src6").isNull()
    judged = (judged.join(F.broadcast(own), is4 & (F.col("src") == F.col("label_src"))
                          & (F.col("window_start") == F.col("label_window")), "left")
              .drop("label_src", "label_window")
              .join(F.broadcast(host), is4 & (F.col("src") == F.col("label_src")), "left")
              .drop("label_src"))
    expert = F.coalesce(F.col("window_label"), F.col("host_label"))
    verdict = F.when(expert.isNotNull(), expert).otherwise(F.col("model_verdict"))
    by = F.when(expert.isNotNull(), F.lit(BY_EXPERT)).when(
        F.col("rule") != NO_RULE, F.col("rule") + 2).otherwise(F.lit(BY_MODEL))
    by = F.when(verdict == REVIEW, F.lit(BY_MODEL)).otherwise(by)
    by_names = F.array(*[F.lit(n) for n in ["model", "expert",
                                             *(f"rule:{i}" for i in ruleset.ids)]])
    verdict_names = F.array(*[F.lit(v) for v in VERDICTS])
    context = F.when((by == BY_MODEL) & (F.col("rule") == NO_RULE)
                     & (F.col("context_packets") > 0), F.col("context_packets"))
    return judged.select(
        F.when(is4, F.col("src")).alias("src"), "window_start", "window_end",
        F.col("packets").cast("long").alias("packets"),
        *[F.col(n) for n in names],
        F.element_at(verdict_names, (F.when(verdict == REVIEW, 2).otherwise(verdict) + 1)
                     .cast("int")).alias("verdict"),
        F.element_at(by_names, (by + 1).cast("int")).alias("decided_by"),
        F.when(expert.isNotNull(), F.lit(1.0)).otherwise(F.col("confidence"))
        .alias("confidence"),
        context.cast("long").alias("context_packets"),
        F.col("src6_text").alias("src6"),
        F.col("outlier"))


def verdict_table(decided: Any) -> Any:
    """The verdict table as the local engine writes it, window times as Spark timestamps."""
    from pyspark.sql import functions as F

    return decided.drop("outlier").withColumns({
        "window_start": F.timestamp_micros(F.expr("window_start div 1000")),
        "window_end": F.timestamp_micros(F.expr("window_end div 1000"))})


def queue_reviews(decided: Any, store: ReviewStore, definition: FeatureDefinition,
                  model_version: str | None = None) -> int:
    """Queue every IPv4 window still waiting for an expert, with its features, as
    :func:`darkscope.backscatter.flow.record_reviews` does. The waiting windows come to the
    driver a partition at a time: experts review thousands, not millions."""
    from pyspark.sql import functions as F

    waiting = decided.where((F.col("verdict") == "needs_review") & F.col("src").isNotNull())
    names = list(definition.names)
    items = ((int(r["src"]), int(r["window_start"]), int(r["window_end"]), int(r["packets"]),
              "outlier" if r["outlier"] else "one-packet" if r["packets"] == 1
              else "low-confidence", float(r["confidence"]), [float(r[n]) for n in names])
             for r in waiting.select("src", "window_start", "window_end", "packets",
                                     "outlier", "confidence", *names).toLocalIterator())
    return store.enqueue(items, definition.key(), model_version)
