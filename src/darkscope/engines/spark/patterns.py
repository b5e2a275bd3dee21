"""``rules mine`` and ``hosts attribute`` on Spark, with the part's own code at both ends.

1. Every Arrow batch of packets is reduced where it lies by
   :meth:`darkscope.patterns.scan.PeriodScanner.reduce` (``mapInArrow``): per period, SYN
   counts per (host, item kind, value) and per host its packets and fingerprint matches, the
   catalogue's transforms and the fingerprints exactly as the local engine computes them.
2. Spark adds those counts up per period and key (a shuffle of small integers, not packets).
3. Each period's sums become a :class:`~darkscope.patterns.scan.Period` again and are mined by
   :func:`darkscope.patterns.pipeline.mine_period` on an executor (``applyInArrow``): the
   transactions, the compiled itemset counter or pyfim, variants and attribution, period by
   period in parallel. Spark's own FPGrowth (``pyspark.ml.fpm``) is not used: it would mine
   the same transactions without the variants, published forms and attribution the rules
   table carries, and one period's transactions fit one executor (a /16's day is a few
   hundred thousand hosts).

TCP option layouts are coded by their first appearance in time, as the local engine codes
them as it reads, so items (and the order ties are broken in) are the same; the codes are
fixed on the driver before the executors start.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from darkscope.packets import PACKET_SCHEMA
from darkscope.patterns.catalogue import Catalogue, load_catalogue
from darkscope.patterns.fingerprints import FAMILIES, FINGERPRINTS
from darkscope.patterns.fingerprints import attribute as attribute_hosts
from darkscope.patterns.pipeline import (
    HOSTS_SCHEMA,
    RULES_SCHEMA,
    MineSettings,
    MineSummary,
    iso_time,
    mine_period,
)
from darkscope.patterns.scan import Period, PeriodScanner

_ITEM, _HOST = 0, 1
_MATCHES = [f"m{j}" for j in range(len(FINGERPRINTS))]
_STATS = [("stat_hosts", pa.int64()), ("stat_rules", pa.int64()),
          ("stat_patterns", pa.int64()), ("stat_skipped", pa.bool_())]


def _fix_layouts(packets: Any, catalogue: Catalogue) -> None:
    """Code the TCP option layouts in order of first appearance in time (then by text), over
    every packet, as the local scanner codes them while it reads."""
    from pyspark.sql import functions as F

    if "tcp_layout" not in packets.columns:
        return
    seen = (packets.groupBy(F.coalesce(F.col("tcp_layout"), F.lit("")).alias("layout"))
            .agg(F.min("ts").alias("first"))
            .orderBy(F.asc_nulls_last("first"), "layout").collect())
    catalogue.layouts.encode([row["layout"] for row in seen])


def _reduce(batches: Iterator[pa.RecordBatch], scanner: PeriodScanner
            ) -> Iterator[pa.RecordBatch]:
    schema = pa.schema([PACKET_SCHEMA.field(c) for c in scanner.columns])
    for batch in batches:
        if not batch.num_rows:
            continue
        typed = pa.Table.from_batches([batch]).cast(schema).combine_chunks().to_batches()[0]
        for part in scanner.reduce(typed):   # Spark's signed types back to the packet table's
            n_items, n_hosts = len(part.item_keys), len(part.hosts)
            matches = part.matches.astype(np.int64)
            yield pa.RecordBatch.from_pydict({
                "period": np.full(n_items + n_hosts, part.start_ns, np.int64),
                "kind": np.r_[np.full(n_items, _ITEM), np.full(n_hosts, _HOST)].astype(np.int8),
                "key": np.r_[part.item_keys.astype(np.int64), part.hosts.astype(np.int64)],
                "count": np.r_[part.item_counts.astype(np.int64),
                               part.packets.astype(np.int64)],
                **{m: np.r_[np.zeros(n_items, np.int64), matches[:, j]]
                   for j, m in enumerate(_MATCHES)}})


def period_sums(packets: Any, catalogue: Catalogue, period_ns: int,
                kinds: tuple[int, ...] = (_ITEM, _HOST)) -> Any:
    """Per (period, kind, key) the summed counts of every batch (steps 1 and 2); ``kinds``:
    item counts, host counts or both."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import ByteType, LongType, StructField, StructType

    scanner = PeriodScanner(catalogue, period_ns)
    _fix_layouts(packets, catalogue)
    have = set(packets.columns)
    needed = packets.select(*[F.col(c) if c in have else F.lit(None).alias(c)
                              for c in scanner.columns])
    schema = StructType([StructField("period", LongType()), StructField("kind", ByteType()),
                         StructField("key", LongType()), StructField("count", LongType()),
                         *(StructField(m, LongType()) for m in _MATCHES)])
    reduced = needed.mapInArrow(lambda batches: _reduce(batches, scanner), schema)
    if len(kinds) == 1:
        reduced = reduced.where(F.col("kind") == kinds[0])
    return reduced.groupBy("period", "kind", "key").agg(
        F.sum("count").alias("count"), *[F.sum(m).alias(m) for m in _MATCHES])


def _period(table: pa.Table) -> Period:
    """A period's sums as the :class:`Period` the local scanner would have made."""
    kind = table["kind"].to_numpy()
    order = np.argsort(table["key"].to_numpy(), kind="stable")
    items, hosts = order[kind[order] == _ITEM], order[kind[order] == _HOST]
    key = table["key"].to_numpy()
    count = table["count"].to_numpy()
    matches = np.column_stack([table[m].to_numpy() for m in _MATCHES])
    return Period(int(table["period"][0].as_py()), key[items].astype(np.uint64),
                  count[items].astype(np.uint64), key[hosts].astype(np.uint32),
                  count[hosts].astype(np.uint64), matches[hosts].astype(np.uint64))


def _spark_schema(schema: pa.Schema) -> Any:
    """The Spark schema of a darkscope table's Arrow schema: integers of any width and sign,
    and nanosecond timestamps, as longs (Spark has no unsigned types; its timestamps hold
    microseconds)."""
    from pyspark.sql.types import (
        ArrayType,
        BooleanType,
        DoubleType,
        LongType,
        StringType,
        StructField,
        StructType,
    )

    def spark_type(kind: pa.DataType) -> Any:
        if pa.types.is_list(kind):
            return ArrayType(spark_type(kind.value_type))
        if pa.types.is_string(kind):
            return StringType()
        if pa.types.is_floating(kind):
            return DoubleType()
        if pa.types.is_boolean(kind):
            return BooleanType()
        return LongType()   # integers and timestamps (ns)

    return StructType([StructField(f.name, spark_type(f.type)) for f in schema])


def _as_spark(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with the types :func:`_spark_schema` gives ``schema``."""
    return pa.Table.from_arrays(
        [table[f.name].cast(pa.list_(pa.int64()) if pa.types.is_list(f.type)
                            and pa.types.is_integer(f.type.value_type) else
                            pa.int64() if pa.types.is_integer(f.type)
                            or pa.types.is_timestamp(f.type) else f.type)
         for f in schema], names=schema.names)


# each period's rules, and on every row its place and what the period counted (a period
# without rules sends one row with no pattern, so the driver still learns of it)
_MINED = pa.schema([*RULES_SCHEMA, pa.field("stat_period", pa.int64()),
                    pa.field("stat_row", pa.int64()), *(pa.field(n, t) for n, t in _STATS)])


def _mine(table: pa.Table, settings: MineSettings, catalogue: Catalogue) -> pa.Table:
    summary = MineSummary()
    period = _period(table)
    rules = mine_period(period, settings, catalogue, summary)
    rules = _as_spark(rules if rules is not None else RULES_SCHEMA.empty_table(), RULES_SCHEMA)
    if rules.num_rows == 0:
        rules = pa.Table.from_pylist([{}], schema=rules.schema)
    n = rules.num_rows
    stats = {"stat_period": [period.start_ns] * n, "stat_row": list(range(n)),
             "stat_hosts": [summary.hosts] * n, "stat_rules": [summary.rules] * n,
             "stat_patterns": [summary.patterns] * n,
             "stat_skipped": [bool(summary.skipped_periods)] * n}
    for name in stats:
        rules = rules.append_column(_MINED.field(name), pa.array(stats[name],
                                                                 _MINED.field(name).type))
    return rules


def mine(packets: Any, settings: MineSettings, catalogue: Catalogue
         ) -> tuple[pa.Table, MineSummary]:
    """The rules table, as the local engine's (on the driver: rules are few), and what was
    mined; the periods are mined in parallel, one per task."""
    summed = period_sums(packets, catalogue, settings.period_ns)
    mined = summed.groupBy("period").applyInArrow(
        lambda table: _mine(table, settings, catalogue), _spark_schema(_MINED))
    result = mined.toArrow().sort_by([("stat_period", "ascending"),
                                      ("stat_row", "ascending")])
    summary = MineSummary()
    for row in result.filter(pc.equal(result["stat_row"], 0)).select(
            ["stat_period", *(n for n, _ in _STATS)]).to_pylist():
        summary.periods += 1
        summary.hosts += row["stat_hosts"]
        summary.largest_period_hosts = max(summary.largest_period_hosts, row["stat_hosts"])
        summary.rules += row["stat_rules"]
        summary.patterns += row["stat_patterns"]
        if row["stat_skipped"]:
            summary.skipped_periods.append(iso_time(row["stat_period"]))
    rules = result.filter(pc.is_valid(result["pattern"])).select(RULES_SCHEMA.names)
    return rules.cast(RULES_SCHEMA), summary


def _attribute(batches: Iterator[pa.RecordBatch], threshold: float
               ) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        matches = np.column_stack([batch.column(m).to_numpy() for m in _MATCHES])
        packets = batch.column("count").to_numpy()
        family, share = attribute_hosts(packets.astype(np.float64),
                                        matches.astype(np.float64), threshold)
        yield pa.RecordBatch.from_pydict({
            "src": batch.column("key"), "period_start": batch.column("period"),
            "family": pa.array(np.array(FAMILIES, dtype=object)[family], pa.string()),
            "match_share": share, "packets": packets})


def attribute(packets: Any, period_ns: int, threshold: float) -> Any:
    """The hosts table of ``hosts attribute`` (src, period_start, family, match_share,
    packets), computed by the executors: a row per host and period is too many to collect."""
    from pyspark.sql import functions as F

    hosts = period_sums(packets, load_catalogue(items=["win"]), period_ns, kinds=(_HOST,))
    attributed = hosts.mapInArrow(lambda batches: _attribute(batches, threshold),
                                  _spark_schema(HOSTS_SCHEMA))
    return attributed.withColumn("period_start", F.timestamp_micros(
        F.expr("period_start div 1000")))
