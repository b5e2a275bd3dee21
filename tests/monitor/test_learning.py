"""Online learning in the monitor: expert labels become a new model version at the next poll,
verdicts name the version that made them, drift holds self-training until confirmed."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow.compute as pc
import pyarrow.dataset as ds

from darkscope.backscatter import persist
from darkscope.backscatter.inputs import read_packets
from darkscope.backscatter.model import REVIEW
from darkscope.backscatter.rules import load_rules
from darkscope.backscatter.telescope import parse_telescope
from darkscope.cli import main
from darkscope.monitor.learning import CONFIRM_FILE, Learner
from darkscope.store import ReviewStore

from .conftest import TELESCOPE, RotatingWriter


def test_expert_labels_make_a_new_version_that_judges_the_next_spans(
        tmp_path, sim_heldout, short_model, capsys) -> None:
    watch, out, store = tmp_path / "spool", tmp_path / "out", tmp_path / "review.db"
    watch.mkdir()
    writer = RotatingWriter(sim_heldout.capture, tmp_path / "parts", files=2, pieces=1,
                            pause_s=0)
    writer.folder.mkdir()
    writer.run()
    first, second = sorted(writer.folder.iterdir())
    shutil.copy(first, watch / first.name)
    args = ["monitor", "--watch", str(watch), "--model", str(short_model), "--telescope",
            TELESCOPE, "-o", str(out), "--store", str(store), "--once"]
    assert main(args) == 0
    with ReviewStore(store) as review:
        queued = review.items()
        assert queued, "the first half left nothing for experts"
        for item in queued[:20]:
            review.label(item.src, "scan", window_start=item.window_start, who="alice")
    shutil.copy(second, watch / second.name)
    assert main([*args, "--finish"]) == 0
    capsys.readouterr()

    assert (out / "models" / "v0002" / "model.json").exists()
    status = json.loads((out / "status.json").read_text())
    update = status["learning"]["updates"][-1]
    assert update["source"] == "experts" and update["labels"] == 20
    assert status["model_version"].startswith("v0002@")
    # the update reports its effect: how many still-pending items the new model decides
    still_pending = queued[20:]
    assert update["pending"] == len(still_pending)
    verdict, _, _ = persist.load(out / "models" / "v0002").model.decide(
        np.array([item.features for item in still_pending]))
    assert update["pending_now_decided"] == int((verdict != REVIEW).sum())
    verdicts = ds.dataset(out / "verdicts", format="parquet", partitioning="hive").to_table()
    versions = set(verdicts["model_version"].to_pylist())
    assert {v.split("@")[0] for v in versions} == {"v0001", "v0002"}
    # the labelled windows are judged by the experts' word wherever they are judged again
    labelled = verdicts.filter(pc.equal(verdicts["decided_by"], "expert"))
    assert set(labelled["verdict"].to_pylist()) <= {"not_ddos"}


def test_drift_holds_self_training_until_an_expert_confirms(tmp_path, sim_heldout,
                                                            short_model) -> None:
    learner = Learner(tmp_path, short_model, None, store=None, self_train=True)
    saved, _ = learner.current()
    table = read_packets([sim_heldout.table]).slice(0, 20_000)
    rules, scope = load_rules(), parse_telescope(TELESCOPE)
    rng = np.random.default_rng(3)
    quiet = [rng.random(400) < 0.02 for _ in range(5)]
    for span, flags in enumerate(quiet):
        assert learner.after_span(saved, table, rules, scope, flags, span) is not None
    assert learner.state.drift is None and learner.state.version == 6
    assert learner.after_span(saved, table, rules, scope, rng.random(400) < 0.4, 9) is None
    drift = learner.state.drift
    assert drift is not None and drift["outlier_rate_now"] > 0.3
    assert learner.after_span(saved, table, rules, scope, rng.random(400) < 0.4, 10) is None
    assert learner.state.version == 6  # held: no self-training on unfamiliar traffic

    (tmp_path / CONFIRM_FILE).write_text(json.dumps({"who": "alice", "at": "now"}))
    assert learner.from_experts(saved) is None  # no store: only the confirmation is read
    assert learner.state.drift is None and learner.state.updates[-1]["who"] == "alice"
    assert learner.after_span(saved, table, rules, scope, rng.random(400) < 0.4, 11)
    assert learner.state.version == 7
