"""`rules mine` and `hosts attribute` with --engine spark write what the local engine
writes: the same rules row for row (every item kind, TCP option layouts included, hourly
periods mined in parallel) and the same family for every host and period."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

DARKSCOPE = str(Path(sys.executable).parent / "darkscope")
SPARK = ("--engine", "spark", "--master", "local[2]", "--conf",
         "spark.sql.shuffle.partitions=4")


def _run(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([DARKSCOPE, *args, "--no-progress"], capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def ingested(sim_heldout, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ingested") / "packets"
    _run("ingest", str(sim_heldout.capture), "-o", str(out))
    return out


def test_rules_mined_on_spark_are_the_local_rules(ingested, tmp_path):
    options = ("--period", "1h", "--min-hosts", "10", "--min-lift", "0", "--all-rules",
               "--items", "win,tos,dport,ttl,ipid,opts", "--top", "3")
    local = tmp_path / "local.parquet"
    mine = _run("rules", "mine", str(ingested), "-o", str(local), *options)
    theirs = tmp_path / "spark.parquet"
    spark = _run("rules", "mine", str(ingested), "-o", str(theirs), *options, *SPARK)
    mine_rows, spark_rows = pq.read_table(local), pq.read_table(theirs)
    assert mine_rows.schema == spark_rows.schema
    assert mine_rows.num_rows > 100 and mine_rows.to_pylist() == spark_rows.to_pylist()
    assert len(pc.unique(mine_rows["period_start"])) >= 2
    assert any("opts=" in p for p in mine_rows["pattern"].to_pylist())
    # the same summary and top patterns; only the timing differs
    assert mine.stdout.split(" in ")[0] == spark.stdout.split(" in ")[0]
    assert mine.stdout.splitlines()[1:] == spark.stdout.splitlines()[1:]


def test_hosts_attributed_on_spark_are_the_local_hosts(ingested, tmp_path):
    local = tmp_path / "hosts.parquet"
    mine = _run("hosts", "attribute", str(ingested), "-o", str(local), "--period", "1h")
    theirs = tmp_path / "hosts-spark"
    spark = _run("hosts", "attribute", str(ingested), "-o", str(theirs), "--period", "1h",
                 *SPARK)

    def rows(path: Path) -> set[tuple]:
        table = pq.read_table(path)
        starts = pc.cast(pc.cast(table["period_start"], pa.timestamp("us", tz="UTC")),
                         pa.int64())
        return {(r["src"], s, r["family"], r["match_share"], r["packets"])
                for r, s in zip(table.to_pylist(), starts.to_pylist(), strict=True)}

    mine_rows = rows(local)
    assert mine_rows == rows(theirs)
    assert {"mirai", "zmap", "unknown"} <= {r[2] for r in mine_rows}
    assert mine.stdout.split(" -> ")[0] == spark.stdout.split(" -> ")[0]
