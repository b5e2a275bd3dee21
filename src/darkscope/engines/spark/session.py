"""A SparkSession for darkscope's tables.

Packet tables keep ``ts`` as Parquet ``TIMESTAMP(NANOS)``; Spark's timestamps hold
microseconds and refuse that type, so it is read as the long number of nanoseconds it is
(``spark.sql.legacy.parquet.nanosAsLong``): the features need the nanoseconds exactly. Arrow
moves batches between the JVM and Python, and the session's time zone is UTC, as every
darkscope table is.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from darkscope.errors import DarkscopeError, UsageError

SETTINGS = {
    "spark.sql.legacy.parquet.nanosAsLong": "true",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.session.timeZone": "UTC",
    # hour=2016-08-06T13 stays text rather than being guessed a date
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
}


def parse_conf(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``KEY=VALUE`` options (``--conf``, as spark-submit takes them)."""
    conf = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--conf {pair!r}: expected KEY=VALUE, e.g. "
                             "spark.executor.memory=8g")
        conf[key.strip()] = value
    return conf


def session(master: str | None = None, conf: Mapping[str, str] | None = None,
            app: str = "darkscope") -> Any:
    """The SparkSession: ``master`` when given, else the one spark-submit set, else all local
    cores; ``conf`` on top of darkscope's settings."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise DarkscopeError("--engine spark needs pyspark (pip install 'darkscope[spark]') "
                             "and Java 17 or later") from exc
    builder = SparkSession.builder.appName(app)
    if not master and "PYSPARK_GATEWAY_PORT" not in os.environ:   # not from spark-submit
        master = "local[*]"
    if master:
        builder = builder.master(master)
    if (master or "").startswith("local"):
        # local workers run this very interpreter, which has darkscope (PySpark reads the
        # variable, not spark.pyspark.python, when it starts them); a cluster's executors
        # run the PYSPARK_PYTHON its operator set up (docs/spark.md)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    for key, value in {**SETTINGS, **(conf or {})}.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
