"""`backscatter train --engine spark` trains the local engine's model: the same windows
labelled by rules and the oracle, and a model that judges held-out traffic as the local one
does, as accurately, also as an online update of an existing model.

Not bit for bit: Spark sums the features in another order (last digits, ~1e-13), and the
second half of a training step learns the model's own confident verdicts, so a window lying on
the confidence boundary can fall on either side; one row more or less then sends the rest of
that step's stochastic gradient descent another way. What must hold is what a user sees."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq

from darkscope.backscatter import persist
from darkscope.backscatter.features import context_features, extract
from darkscope.backscatter.flow import oracle_labels
from darkscope.backscatter.inputs import read_packets
from darkscope.backscatter.model import REVIEW
from darkscope.store import ReviewStore

TELESCOPE = "203.0.0.0/16"
SAME = ("windows", "rule_labelled", "expert_labelled", "answered_by_oracle", "packets")
NEAR = ("auto_labelled", "sent_to_experts", "queued")


def _train(run, ingested, out, store, *extra: str) -> dict:
    done = run("backscatter", "train", str(ingested), "--telescope", TELESCOPE, "-o", str(out),
               "--store", str(store), "--json", *extra)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _same_training(local: dict, theirs: dict) -> None:
    assert {k: local[k] for k in SAME} == {k: theirs[k] for k in SAME}
    for key in NEAR:   # boundary windows only (see the module's docstring)
        assert abs(local[key] - theirs[key]) <= max(2, local["windows"] // 500), key


def _verdicts(model_dir, table) -> tuple[np.ndarray, np.ndarray]:
    """The model's verdict on each held-out window, and the window's true class."""
    saved = persist.load(model_dir)
    windows = extract(table, saved.definition)
    judged, _ = context_features(table, windows)
    verdict, _, _ = saved.model.decide(judged)
    return verdict, windows.src


def _agree(model_a, model_b, table, truth) -> tuple[float, float, float]:
    """Share of held-out windows judged alike, and each model's accuracy on the windows it
    decided (against the simulator's truth)."""
    (a, src), (b, _) = _verdicts(model_a, table), _verdicts(model_b, table)
    actual = (oracle_labels(src, truth) == "ddos").astype(np.int64)

    def accuracy(v: np.ndarray) -> float:
        decided = v != REVIEW
        return float((v[decided] == actual[decided]).mean())

    return float((a == b).mean()), accuracy(a), accuracy(b)


def test_spark_trains_the_local_engines_model(darkscope, ingested, sim_heldout, sim_train,
                                             model_dir, tmp_path):
    oracle = ("--truth", str(sim_heldout.truth), "--expert-oracle", "--expert-budget", "40")
    spark = ("--engine", "spark", "--master", "local[2]")
    local = _train(darkscope, ingested, tmp_path / "local", tmp_path / "local.db", *oracle)
    theirs = _train(darkscope, ingested, tmp_path / "spark", tmp_path / "spark.db", *oracle,
                    *spark)
    assert local["answered_by_oracle"] == 40 and local["rule_labelled"] > 0
    _same_training(local, theirs)
    assert local["telescope"] == theirs["telescope"]
    with ReviewStore(tmp_path / "local.db") as a, ReviewStore(tmp_path / "spark.db") as b:
        answered = {key: label.label for key, label in a.labels().items()}
        assert len(answered) == 40
        assert answered == {key: label.label for key, label in b.labels().items()}
    held_out, truth = read_packets(sim_train.table), pq.read_table(sim_train.truth)
    alike, mine, other = _agree(tmp_path / "local", tmp_path / "spark", held_out, truth)
    assert alike >= 0.97 and mine > 0.9 and abs(mine - other) <= 0.02, (alike, mine, other)

    # an online update of an existing model, on either engine
    update = ("--update", str(model_dir))
    local = _train(darkscope, ingested, tmp_path / "local-up", tmp_path / "up-local.db",
                   *update)
    theirs = _train(darkscope, ingested, tmp_path / "spark-up", tmp_path / "up-spark.db",
                    *update, *spark)
    _same_training(local, theirs)
    assert persist.load(tmp_path / "spark-up").info["updates"] == \
        persist.load(model_dir).info["updates"] + 1
    alike, mine, other = _agree(tmp_path / "local-up", tmp_path / "spark-up", held_out, truth)
    assert alike >= 0.97 and abs(mine - other) <= 0.02, (alike, mine, other)


def test_spark_training_refuses_what_it_cannot_do(darkscope, ingested, tmp_path):
    done = darkscope("backscatter", "train", str(ingested), "--window-packets", "20", "-o",
                     str(tmp_path / "m"), "--store", str(tmp_path / "s.db"), "--engine",
                     "spark", "--master", "local[2]")
    assert done.returncode == 2 and "--window-packets" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "m").exists()
    done = darkscope("backscatter", "train", str(ingested), "-o", "s3a://bucket/model",
                     "--engine", "spark")
    assert done.returncode == 2 and "local directory" in done.stderr


def test_training_windows_of_a_dual_stack_table_are_the_local_ones(spark, sim_heldout,
                                                                   tmp_path):
    from darkscope.backscatter.features import FeatureDefinition
    from darkscope.backscatter.rules import apply_rules, load_rules
    from darkscope.backscatter.telescope import parse_telescope
    from darkscope.engines.spark import packets
    from darkscope.engines.spark.train import training_steps

    from .test_spark_features import _dual_stack

    mixed = _dual_stack(read_packets(sim_heldout.table))
    path = tmp_path / "dual-stack.parquet"
    pq.write_table(mixed, path)
    definition, rules = FeatureDefinition(), load_rules()
    telescope = parse_telescope(TELESCOPE + ",2001:db8:ab::/48")
    rows = packets.detector_rows(packets.read(spark, [str(path)], positions=True))
    (step,) = training_steps(rows, definition, rules, telescope)
    theirs, rule, judged, context = step.windows, step.rule_index, step.judged, step.context
    table = read_packets(path)
    mine = extract(table, definition)
    mine_rule, _ = apply_rules(rules, table, mine.row_of_packet, len(mine), mine.packets,
                               telescope)
    mine_judged, mine_context = context_features(table, mine)
    assert mine.is6.sum() > 10
    for name in ("src", "window_start", "window_end", "packets", "is6", "src6"):
        np.testing.assert_array_equal(getattr(theirs, name), getattr(mine, name), name)
    np.testing.assert_array_equal(rule, mine_rule)
    np.testing.assert_array_equal(context, mine_context)
    np.testing.assert_allclose(judged, mine_judged, rtol=1e-9, atol=1e-9)
    # one id per host, as the local engine's ids group them
    pairs = set(zip(theirs.host.tolist(), mine.host.tolist(), strict=True))
    assert len(pairs) == len(set(mine.host.tolist())) == len(set(theirs.host.tolist()))


def test_spark_trains_in_the_local_engines_steps(spark, ingested, tmp_path):
    from darkscope.backscatter.features import FeatureDefinition
    from darkscope.backscatter.rules import load_rules
    from darkscope.backscatter.training import fit_steps, train_stream
    from darkscope.engines.spark import packets
    from darkscope.engines.spark.train import _chunks, training_steps

    assert list(_chunks([(0, 5), (1, 5), (2, 9), (3, 1)], 10)) == [(0, 1), (2, 3)]
    assert list(_chunks([(7, 30), (8, 2)], 10)) == [(7, 7), (8, 8)]
    # hourly windows without context: each hour of the day (35 k packets) is a step
    definition, rules = FeatureDefinition(context_below=0), load_rules()
    telescope = "203.0.0.0/16"
    local, local_report, scope, _ = train_stream([ingested], rules, telescope,
                                                 definition=definition, chunk_rows=20_000)
    rows = packets.detector_rows(packets.read(spark, [str(ingested)], positions=True))
    steps = list(training_steps(rows, definition, rules, scope, chunk_rows=20_000))
    assert len(steps) == 2 and local.info["updates"] == 1
    theirs, report = fit_steps(iter(steps), rules)
    assert theirs.info["updates"] == 1
    assert (report.windows, report.rule_labelled) == (local_report.windows,
                                                      local_report.rule_labelled)
    assert sum(len(s.windows) for s in steps) == local_report.windows
