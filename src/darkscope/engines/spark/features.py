"""The 17 host-window features in Spark SQL, as :mod:`darkscope.backscatter.features` defines
them (docs/backscatter.md gives the SQL): group-bys, two ``lag`` windows for the intervals and
one for the address spans, no Python per row.

Means and standard deviations use the local engine's formulas over the same sums (population
standard deviation as ``sqrt(max(Σx²/n − mean², 0))``, gaps as nanoseconds × 1e-9), not
Spark's ``stddev_pop``, whose more careful algorithm gives other last digits; what remains is
the order of the additions, a few units in the last place (the tests allow 1e-9 relative).

Time windows only: a packet-count window (``--window-packets``) is the host's N packets in
time order, and packets with the same timestamp have no order Spark could reproduce.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from darkscope.backscatter.features import NS, FeatureDefinition
from darkscope.errors import UsageError

KEY = ("host", "w")


def _moments(n: Any, total: Any, sq: Any) -> tuple[Any, Any]:
    from pyspark.sql import functions as F

    mean = F.when(n > 0, total / n).otherwise(F.lit(0.0))
    std = F.when(n > 0, F.sqrt(F.greatest(sq / n - mean * mean, F.lit(0.0)))).otherwise(
        F.lit(0.0))
    return mean, std


def _per_value(keyed: Any, column: str, name: str) -> Any:
    """Distinct values of ``column`` per host-window and the sum of squared packets per value
    (GROUP BY host, w, value; then host, w)."""
    from pyspark.sql import functions as F

    pairs = keyed.groupBy(*KEY, column).agg(F.count(F.lit(1)).alias("c"))
    return pairs.groupBy(*KEY).agg(F.count(F.lit(1)).alias(f"{name}_n"),
                                   F.sum(F.col("c") * F.col("c")).cast("double")
                                   .alias(f"{name}_sq"))


def host_windows(rows: Any, definition: FeatureDefinition) -> Any:
    """Per host-window of :func:`darkscope.engines.spark.packets.detector_rows`: ``host``,
    ``src`` (0 for an IPv6 host), ``src6`` (bytes; null for IPv4), ``window_start``,
    ``window_end`` (ns), ``packets`` and the named features."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if definition.window_s is None:
        raise UsageError("--engine spark computes time windows only: a window of N packets "
                         "needs the packets' one time order, which equal timestamps do not "
                         "give a cluster; use the local engine for --window-packets")
    span = definition.window_s * NS
    keyed = rows.withColumn("w", F.expr(f"ts div {span}"))
    by_time = Window.partitionBy(*KEY).orderBy("ts")
    by_port = Window.partitionBy(*KEY, "dport_counted").orderBy("ts")
    gaps = (keyed.withColumn("gap", (F.col("ts") - F.lag("ts").over(by_time)) * 1e-9)
            .withColumn("port_gap", (F.col("ts") - F.lag("ts").over(by_port)) * 1e-9))
    payload = F.coalesce(F.col("payload_len").cast("double"), F.lit(0.0))
    main = gaps.groupBy(*KEY).agg(
        F.count(F.lit(1)).alias("packets"),
        F.coalesce(F.first("src", ignorenulls=True), F.lit(0)).cast("long").alias("src"),
        F.first(F.when(F.col("is6"), F.col("src6")), ignorenulls=True).alias("src6"),
        F.count("gap").alias("gap_n"), F.sum("gap").alias("gap_sum"),
        F.sum(F.col("gap") * F.col("gap")).alias("gap_sq"),
        F.count("port_gap").alias("port_gap_n"), F.sum("port_gap").alias("port_gap_sum"),
        F.sum(F.col("port_gap") * F.col("port_gap")).alias("port_gap_sq"),
        F.countDistinct("proto_counted").cast("double").alias("protocols"),
        F.sum(payload).alias("payload_sum"), F.sum(payload * payload).alias("payload_sq"))
    spans = (keyed.select(*KEY, "dst_counted").distinct()
             .withColumn("span", (F.col("dst_counted") - F.lag("dst_counted").over(
                 Window.partitionBy(*KEY).orderBy("dst_counted"))).cast("double"))
             .groupBy(*KEY).agg(F.count("span").alias("span_n"), F.sum("span").alias("span_sum"),
                                F.sum(F.col("span") * F.col("span")).alias("span_sq")))
    joined = main
    for column, name in (("sport_counted", "sport"), ("dst_counted", "dst"),
                         ("dport_counted", "dport")):
        joined = joined.join(_per_value(keyed, column, name), list(KEY))
    joined = joined.join(spans, list(KEY))

    n = F.col("packets").cast("double")
    zero = F.lit(0.0)

    def summed(name: str) -> Any:
        return F.coalesce(F.col(name), zero)

    features: dict[str, Any] = {"packet_count": n}
    features["interval_mean"], features["interval_std"] = _moments(
        F.col("gap_n"), summed("gap_sum"), summed("gap_sq"))
    for name, plural in (("sport", "sports"), ("dst", "dsts"), ("dport", "dports")):
        distinct = F.col(f"{name}_n").cast("double")
        mean = n / distinct
        features[plural] = distinct
        features[f"pkts_per_{name}_mean"] = mean
        features[f"pkts_per_{name}_std"] = F.sqrt(F.greatest(
            F.col(f"{name}_sq") / distinct - mean * mean, zero))
    features["dport_interval_mean"], features["dport_interval_std"] = _moments(
        F.col("port_gap_n"), summed("port_gap_sum"), summed("port_gap_sq"))
    features["protocols"] = F.col("protocols")
    if definition.variant == "payload":
        features["payload_mean"], features["payload_std"] = _moments(
            n, F.col("payload_sum"), F.col("payload_sq"))
    else:
        features["dst_span_mean"], features["dst_span_std"] = _moments(
            F.col("span_n"), summed("span_sum"), summed("span_sq"))
    return joined.select(
        "host", "src", "src6", (F.col("w") * span).alias("window_start"),
        (F.col("w") * span + span).alias("window_end"), "packets",
        *[features[name].alias(name) for name in definition.names])


def judged(rows: Any, windows: Any, definition: FeatureDefinition) -> Any:
    """``windows`` with ``judged_<feature>``: the vector the classifier judges, its host's
    features over the context span for a window under ``context_below`` packets whose host
    sent more there (:func:`darkscope.backscatter.features.context_features`), and
    ``context_packets`` (0 where the window's own features are judged)."""
    from pyspark.sql import functions as F

    names = definition.names
    if not definition.context_s or not definition.context_below:
        return windows.select("*", *[F.col(n).alias(f"judged_{n}") for n in names],
                              F.lit(0).cast("long").alias("context_packets"))
    span = definition.context_s * NS
    sparse = windows.where(F.col("packets") < definition.context_below).select("host")
    context = host_windows(rows.join(sparse.distinct(), "host", "left_semi"),
                           replace(definition, window_s=definition.context_s,
                                   window_packets=None, context_s=None))
    context = context.select("host", F.col("window_start").alias("span_start"),
                             F.col("packets").alias("span_packets"),
                             *[F.col(n).alias(f"span_{n}") for n in names])
    out = windows.withColumn("span_start", F.expr(f"window_start div {span}") * span).join(
        context, ["host", "span_start"], "left")
    use = (F.col("packets") < definition.context_below) & F.coalesce(
        F.col("span_packets") > F.col("packets"), F.lit(False))
    return out.select(
        *windows.columns,
        *[F.when(use, F.col(f"span_{n}")).otherwise(F.col(n)).alias(f"judged_{n}")
          for n in names],
        F.when(use, F.col("span_packets")).otherwise(F.lit(0)).cast("long")
        .alias("context_packets"))
