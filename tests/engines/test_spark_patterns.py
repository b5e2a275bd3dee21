"""`rules mine` and `hosts attribute` with --engine spark write what the local engine
writes: the same rules row for row (every item kind, TCP option layouts included, hourly
periods mined in parallel) and the same family for every host and period."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

SPARK = ("--engine", "spark", "--master", "local[2]", "--conf",
         "spark.sql.shuffle.partitions=4")


def test_rules_mined_on_spark_are_the_local_rules(darkscope, ingested, tmp_path):
    options = ("--period", "1h", "--min-hosts", "10", "--min-lift", "0", "--all-rules",
               "--items", "win,tos,dport,ttl,ipid,opts", "--top", "3")
    local = tmp_path / "local.parquet"
    mine = darkscope("rules", "mine", str(ingested), "-o", str(local), *options)
    theirs = tmp_path / "spark.parquet"
    spark = darkscope("rules", "mine", str(ingested), "-o", str(theirs), *options, *SPARK)
    assert (mine.returncode, spark.returncode) == (0, 0), mine.stderr + spark.stderr
    mine_rows, spark_rows = pq.read_table(local), pq.read_table(theirs)
    assert mine_rows.schema == spark_rows.schema
    assert mine_rows.num_rows > 100 and mine_rows.to_pylist() == spark_rows.to_pylist()
    assert len(pc.unique(mine_rows["period_start"])) >= 2
    assert any("opts=" in p for p in mine_rows["pattern"].to_pylist())
    # the same summary and top patterns; only the timing differs
    assert mine.stdout.split(" in ")[0] == spark.stdout.split(" in ")[0]
    assert mine.stdout.splitlines()[1:] == spark.stdout.splitlines()[1:]


def test_hosts_attributed_on_spark_are_the_local_hosts(darkscope, ingested, tmp_path):
    local = tmp_path / "hosts.parquet"
    mine = darkscope("hosts", "attribute", str(ingested), "-o", str(local), "--period", "1h")
    theirs = tmp_path / "hosts-spark"
    spark = darkscope("hosts", "attribute", str(ingested), "-o", str(theirs), "--period", "1h",
                 *SPARK)
    assert (mine.returncode, spark.returncode) == (0, 0), mine.stderr + spark.stderr

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


def test_the_timeline_on_spark_is_the_local_timeline(darkscope, ingested, tmp_path):
    rules = tmp_path / "rules.parquet"
    assert darkscope("rules", "mine", str(ingested), "-o", str(rules), "--period", "1h",
                     "--min-hosts", "10", "--min-lift", "0").returncode == 0
    pages = {}
    for name, engine in (("local", ()), ("spark", SPARK)):
        done = darkscope("rules", "timeline", str(rules), "-o", str(tmp_path / f"{name}.html"),
                         "--table", str(tmp_path / f"{name}.parquet"), "--scenario",
                         "mirai-2016", *engine)
        assert done.returncode == 0, done.stderr
        pages[name] = (tmp_path / f"{name}.html").read_text(), done.stdout.split(" -> ")[0]
    assert pages["local"] == pages["spark"] and "over 2 periods" in pages["local"][1]
    local, spark = pq.read_table(tmp_path / "local.parquet"), pq.read_table(
        tmp_path / "spark.parquet")
    assert local.num_rows > 10 and local.to_pylist() == spark.to_pylist()
    wrong = darkscope("rules", "timeline", str(ingested / "missing.parquet"), "-o",
                      str(tmp_path / "x.html"), *SPARK)
    assert wrong.returncode == 2 and "no such file" in wrong.stderr
    assert not (tmp_path / "x.html").exists()
