"""darkscope started by ``spark-submit``, as a cluster's operator starts it: the command takes
the master spark-submit set (no ``--master``) and writes what the local engine writes."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq


def test_spark_submit_runs_a_command_on_its_master(darkscope, ingested, tmp_path):
    from pyspark import __file__ as pyspark_file

    local = tmp_path / "rules.parquet"
    options = ("--period", "1h", "--min-hosts", "10", "--min-lift", "0")
    assert darkscope("rules", "mine", str(ingested), "-o", str(local), *options).returncode == 0
    submit = Path(pyspark_file).parent / "bin" / "spark-submit"
    script = Path(importlib.util.find_spec("darkscope").origin).with_name("__main__.py")
    out = tmp_path / "rules-submitted.parquet"
    done = subprocess.run(
        [str(submit), "--master", "local[1]", "--conf", "spark.sql.shuffle.partitions=2",
         str(script), "rules", "mine", str(ingested), "-o", str(out), *options,
         "--engine", "spark", "--no-progress"],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYSPARK_PYTHON": sys.executable})
    assert done.returncode == 0, done.stderr[-3000:]
    assert pq.read_table(out).num_rows > 10
    assert pq.read_table(out).to_pylist() == pq.read_table(local).to_pylist()
