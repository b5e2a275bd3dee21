"""The victims table of :func:`darkscope.backscatter.victims.victims` on Spark.

The DDoS host-windows' packets (an equi-join on host and window: windows are aligned time
windows), cut into Moore et al.'s flows by a ``lag`` over each victim's packets in time order
(a gap longer than ``gap_s`` starts a new attack), then one group-by per attack and one per
(attack, reply port) for the port list. IPv4 victims only, as the local engine (Moore et
al.'s scaling assumes sources spoofed over the IPv4 space).
"""

from __future__ import annotations

from typing import Any

from darkscope.backscatter.features import NS
from darkscope.backscatter.telescope import Telescope
from darkscope.backscatter.victims import DEFAULT_GAP_S


def victims(rows: Any, decided: Any, telescope: Telescope, window_s: int,
            gap_s: float = DEFAULT_GAP_S, max_ports: int = 8) -> Any:
    """One row per attack: victim, start, end (timestamps), packets, ports, distinct_targets,
    observed_pps and estimated_attack_pps, as the local engine's table."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    span = window_s * NS
    ddos = (decided.where((F.col("verdict") == "ddos") & F.col("src").isNotNull())
            .select(F.col("src").alias("victim"),
                    F.expr(f"window_start div {span}").alias("w")))
    packets = (rows.where(F.col("src").isNotNull())
               .select(F.col("src").cast("long").alias("victim"), "ts", "sport", "icmp_type",
                       "dst", "dport", F.expr(f"ts div {span}").alias("w"))
               .join(ddos, ["victim", "w"], "left_semi"))
    in_time = Window.partitionBy("victim").orderBy("ts")
    gap = F.col("ts") - F.lag("ts").over(in_time)
    flows = packets.withColumn("new", F.coalesce((gap > gap_s * NS).cast("int"), F.lit(1)))
    flows = flows.withColumn("attack", F.sum("new").over(
        in_time.rowsBetween(Window.unboundedPreceding, Window.currentRow)))
    key = ["victim", "attack"]
    label = F.when(F.col("sport").isNotNull(), F.col("sport").cast("long")).otherwise(
        -1 - F.coalesce(F.col("icmp_type").cast("long"), F.lit(255)))
    ports = (flows.groupBy(*key, label.alias("label")).count()
             .groupBy(*key).agg(F.sort_array(F.collect_list(F.struct(
                 (-F.col("count")).alias("minus"), F.col("label")))).alias("by_use")))
    text = F.transform(F.slice(F.col("by_use"), 1, max_ports), lambda p: F.when(
        p["label"] >= 0, p["label"].cast("string")).otherwise(
        F.concat(F.lit("icmp-"), (-1 - p["label"]).cast("string"))))
    attacks = flows.groupBy(*key).agg(
        F.min("ts").alias("start_ns"), F.max("ts").alias("end_ns"),
        F.count(F.lit(1)).alias("packets"),
        # a SYN-ACK is retransmitted to the same spoofed address and port: count each
        # (telescope address, port) once per attack, so the estimate is of attack packets
        F.countDistinct("dst", F.coalesce(F.col("dport").cast("long"), F.lit(-1)))
        .alias("distinct_targets"))
    duration = F.greatest((F.col("end_ns") - F.col("start_ns")) / NS, F.lit(1.0))
    return attacks.join(ports, key).select(
        F.col("victim"),
        F.timestamp_micros(F.expr("start_ns div 1000")).alias("start"),
        F.timestamp_micros(F.expr("end_ns div 1000")).alias("end"),
        "packets", F.array_join(text, ",").alias("ports"), "distinct_targets",
        (F.col("packets") / duration).alias("observed_pps"),
        (F.col("distinct_targets") / duration / F.lit(telescope.share))
        .alias("estimated_attack_pps"),
        F.col("start_ns"), F.col("end_ns"))
