"""Packet tables in Spark, with the columns the detector counts by.

``darkscope ingest`` writes Hive-partitioned Parquet (``hour=2016-08-06T13/``); Spark reads a
file, a directory or a glob of either, on local disks, HDFS or S3 alike. Rows are kept as the
local engine keeps them (:func:`darkscope.backscatter.inputs.detector_rows`: an IPv4 or IPv6
source and a timestamp) and get the values the features group by
(:mod:`darkscope.backscatter.addresses`): ``host``, the IPv4 source as a number or the IPv6
source as 32 hex digits (the two never look alike, so one text key joins without null
handling); ``dst_counted``, the IPv4 destination or an IPv6 destination's /64 (bits 32-63);
ports and protocol with the local engine's stand-ins for "none".
"""

from __future__ import annotations

import ipaddress
from typing import Any

from darkscope.backscatter.features import NO_PORT
from darkscope.backscatter.inputs import COLUMNS
from darkscope.backscatter.telescope import DEFAULT_PREFIX_LENGTH6, Telescope, parse_spec
from darkscope.errors import UsageError

NO_PROTO = 256


def read(spark: Any, paths: list[str], positions: bool = False) -> Any:
    """The detector's columns of the packet tables at ``paths`` (IPv6 columns null where a
    table predates them); with ``positions``, each row's file and row in it (``first_file``,
    ``first_row``: the order the local engine reads them in)."""
    from pyspark.sql import functions as F

    frame = spark.read.parquet(*paths)
    have = set(frame.columns)
    where = [F.col("_metadata.file_path").alias("first_file"),
             F.col("_metadata.row_index").alias("first_row")] if positions else []
    return frame.select(*[F.col(c) if c in have else F.lit(None).cast(
        "binary" if c.endswith("6") else "long").alias(c) for c in COLUMNS], *where)


def detector_rows(packets: Any) -> Any:
    """IP rows with a timestamp, with ``ts`` in nanoseconds and the grouping columns."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import LongType

    ts = F.col("ts") if isinstance(packets.schema["ts"].dataType, LongType) \
        else F.unix_micros(F.col("ts")) * 1000   # a timestamp column Spark made itself
    is6 = F.col("src").isNull() & F.col("src6").isNotNull()
    subnet = F.conv(F.hex(F.substring(F.col("dst6"), 5, 4)), 16, 10).cast("long")
    return (packets
            .where(F.col("ts").isNotNull() & (F.col("src").isNotNull() | F.col("src6").isNotNull()))
            .withColumn("ts", ts)
            .withColumn("is6", is6)
            .withColumn("host", F.when(is6, F.lower(F.hex("src6"))).otherwise(
                F.col("src").cast("string")))
            .withColumn("dst_counted", F.coalesce(F.when(is6, subnet).otherwise(F.col("dst")),
                                                  F.lit(0)).cast("long"))
            .withColumn("sport_counted", F.coalesce(F.col("sport").cast("long"),
                                                    F.lit(NO_PORT)))
            .withColumn("dport_counted", F.coalesce(F.col("dport").cast("long"),
                                                    F.lit(NO_PORT)))
            .withColumn("proto_counted", F.coalesce(F.col("proto").cast("long"),
                                                    F.lit(NO_PROTO))))


def resolve(rows: Any, spec: str | None) -> Telescope:
    """The telescope of ``--telescope`` on Spark: a family without a network named is the
    block holding most destinations of all the packets (the local engine looks at its first
    chunk), the smaller block on a tie, as :func:`darkscope.backscatter.telescope.resolve`."""
    from pyspark.sql import functions as F

    network4, network6, length = parse_spec(spec)
    if network4 is None:
        block = F.shiftright(F.col("dst").cast("long"), 32 - length) if length else F.lit(0)
        top = (rows.where(F.col("dst").isNotNull()).groupBy(block.alias("block")).count()
               .orderBy(F.desc("count"), "block").first())
        if top is not None:
            network4 = ipaddress.IPv4Network((int(top["block"]) << (32 - length), length))
    if network6 is None:
        hex_digits = DEFAULT_PREFIX_LENGTH6 // 4
        top = (rows.where(F.col("dst6").isNotNull())
               .groupBy(F.substring(F.hex("dst6"), 1, hex_digits).alias("block")).count()
               .orderBy(F.desc("count"), "block").first())
        if top is not None:
            network6 = ipaddress.IPv6Network(
                (int(top["block"], 16) << (128 - DEFAULT_PREFIX_LENGTH6),
                 DEFAULT_PREFIX_LENGTH6))
    if network4 is None and network6 is None:
        raise UsageError("--telescope: no destination addresses to infer the network from")
    return Telescope(network4, network6)
