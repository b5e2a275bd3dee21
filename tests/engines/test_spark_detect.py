"""`backscatter detect --engine spark` gives the local engine's verdicts: the same decisions,
deciders and confidences per host-window, experts' labels applied the same way, the same
review queue and the same attacks on the same victims; captures are refused with the command
that ingests them."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from darkscope.backscatter import persist
from darkscope.backscatter.flow import decide, verdict_table
from darkscope.backscatter.inputs import read_packets
from darkscope.backscatter.rules import load_rules
from darkscope.backscatter.telescope import parse_telescope
from darkscope.backscatter.victims import victims
from darkscope.engines.spark import detect, packets
from darkscope.engines.spark import victims as spark_victims
from darkscope.store import ReviewStore

TELESCOPE = "203.0.0.0/16"


def _key(row: dict) -> tuple:
    start = row["window_start"]
    return (row["src"], row["src6"], start if isinstance(start, int) else
            int(start.timestamp()) * 10**9)


def _compare(local: list[dict], theirs: list[dict], names: tuple[str, ...]) -> None:
    mine = {_key(r): r for r in local}
    other = {_key(r): r for r in theirs}
    assert mine.keys() == other.keys()
    for key, row in mine.items():
        them = other[key]
        assert (row["verdict"], row["decided_by"], row["packets"], row["context_packets"]) == \
            (them["verdict"], them["decided_by"], them["packets"], them["context_packets"]), key
        assert them["confidence"] == pytest.approx(row["confidence"], rel=1e-9, abs=1e-12)
        np.testing.assert_allclose([them[n] for n in names], [row[n] for n in names],
                                   rtol=1e-9, atol=1e-9)


def test_verdicts_and_expert_labels_match_the_local_engine(spark, sim_heldout, model_dir,
                                                          tmp_path):
    saved, rules = persist.load(model_dir), load_rules()
    telescope = parse_telescope(TELESCOPE)
    table = read_packets(sim_heldout.table)
    before = verdict_table(decide(table, saved, rules, telescope)).to_pylist()
    by_model = [r for r in before if r["decided_by"] == "model" and r["src"] is not None]
    ruled = [r for r in before if r["decided_by"].startswith("rule:")]
    with ReviewStore(tmp_path / "labels.db") as store:   # experts overrule both
        store.label(by_model[0]["src"], "ddos", who="alice")
        store.label(ruled[0]["src"], "other", window_start=int(
            ruled[0]["window_start"].timestamp()) * 10**9, who="bob")
        labels = store.labels()
    local = verdict_table(decide(table, saved, rules, telescope, labels)).to_pylist()
    assert sum(r["decided_by"] == "expert" for r in local) >= 2
    rows = packets.detector_rows(packets.read(spark, [str(sim_heldout.table)]))
    theirs = detect.decide(spark, rows, saved, rules, telescope, labels).collect()
    _compare(local, [r.asDict() for r in theirs], saved.definition.names)
    verdicts = {r["verdict"] for r in local}
    assert verdicts == {"ddos", "not_ddos", "needs_review"}


def _attacks(table: pa.Table) -> dict[tuple[int, int], dict]:
    """Attacks by (victim, start in µs: what a Spark timestamp holds)."""
    start = pc.cast(pc.cast(table["start"], pa.timestamp("us", tz="UTC"), safe=False),
                    pa.int64()).to_pylist()
    return {(r["victim"], s): r for r, s in zip(table.to_pylist(), start, strict=True)}


def _same_attacks(local: pa.Table, theirs: pa.Table) -> None:
    mine, other = _attacks(local), _attacks(theirs)
    assert mine.keys() == other.keys() and mine
    for key, row in mine.items():
        them = other[key]
        assert (row["packets"], row["ports"], row["distinct_targets"]) == \
            (them["packets"], them["ports"], them["distinct_targets"]), key
        for name in ("observed_pps", "estimated_attack_pps"):
            assert them[name] == pytest.approx(row[name], rel=1e-9), (key, name)


def test_attacks_on_victims_match_the_local_engine(spark, sim_heldout, model_dir):
    saved, rules = persist.load(model_dir), load_rules()
    telescope = parse_telescope(TELESCOPE)
    table = read_packets(sim_heldout.table)
    local = victims(table, verdict_table(decide(table, saved, rules, telescope)), telescope)
    assert len({v for v in local["victim"].to_pylist()}) > 3
    assert any("icmp-" in p for p in local["ports"].to_pylist())
    rows = packets.detector_rows(packets.read(spark, [str(sim_heldout.table)]))
    decided = detect.decide(spark, rows, saved, rules, telescope)
    theirs = spark_victims.victims(rows, decided, telescope, saved.definition.window_s)
    _same_attacks(local, theirs.drop("start_ns", "end_ns").toArrow())


def test_the_cli_on_spark_writes_what_the_local_cli_writes(darkscope, ingested, sim_heldout,
                                                           model_dir, tmp_path):
    _run = darkscope
    local = tmp_path / "local.parquet"
    done = _run("backscatter", "detect", str(ingested), "--model", str(model_dir),
                "--telescope", TELESCOPE, "-o", str(local), "--store",
                str(tmp_path / "local.db"), "--victims", str(tmp_path / "local-victims.parquet"))
    assert done.returncode == 0, done.stderr
    on_spark = tmp_path / "spark.parquet"
    done = _run("backscatter", "detect", str(ingested), "--model", str(model_dir),
                "--telescope", TELESCOPE, "-o", str(on_spark), "--store",
                str(tmp_path / "spark.db"), "--victims", str(tmp_path / "spark-victims"),
                "--engine", "spark", "--master", "local[2]",
                "--conf", "spark.sql.shuffle.partitions=4")
    assert done.returncode == 0, done.stderr
    assert "on Spark (local[2])" in done.stdout and "attacks on" in done.stdout
    _same_attacks(pq.read_table(tmp_path / "local-victims.parquet"),
                  pq.read_table(tmp_path / "spark-victims"))
    # the standalone command, from the local engine's verdicts file and the Spark one's
    for verdicts in (local, on_spark):
        out = tmp_path / f"victims-of-{verdicts.stem}"
        done = _run("backscatter", "victims", str(verdicts), str(ingested), "--telescope",
                    TELESCOPE, "-o", str(out), "--engine", "spark", "--master", "local[2]")
        assert done.returncode == 0, done.stderr
        _same_attacks(pq.read_table(tmp_path / "local-victims.parquet"), pq.read_table(out))
    assert on_spark.is_dir() and not list(tmp_path.glob(".spark.parquet.*"))
    names = persist.load(model_dir).definition.names
    _compare(pq.read_table(local).to_pylist(), pq.read_table(on_spark).to_pylist(), names)
    with ReviewStore(tmp_path / "local.db") as a, ReviewStore(tmp_path / "spark.db") as b:
        queued = [(i.src, i.window_start, i.reason) for i in a.items()]
        assert queued and sorted(queued) == sorted((i.src, i.window_start, i.reason)
                                                   for i in b.items())
    refused = _run("backscatter", "detect", str(sim_heldout.capture), "--model",
                   str(model_dir), "-o", str(tmp_path / "x.parquet"), "--engine", "spark")
    assert refused.returncode == 2 and "darkscope ingest" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "x.parquet").exists()
    mixed = _run("backscatter", "detect", str(ingested), "--model", str(model_dir), "-o",
                 str(tmp_path / "y.parquet"), "--master", "local[2]")
    assert mixed.returncode == 2 and "--engine spark" in mixed.stderr
