"""The PP-ELM page against a real aggregator's state and a party's evaluation report."""

from __future__ import annotations

import json

import httpx
import numpy as np

from darkscope.ppml import datasets
from darkscope.ppml.elm import ELM

from .conftest import login


def test_rounds_show_their_parties_status_and_reported_accuracy(served) -> None:
    with httpx.Client(base_url=served.url, timeout=60) as client:
        login(client, "victor")
        found = client.get("/api/v1/ppml").json()
        page = client.get("/ppml")
    rounds = {r["round"]: r for r in found["rounds"]}
    assert set(rounds) == {"published", "open"} and not found["problems"]
    published, waiting = rounds["published"], rounds["open"]
    assert published["status"] == "model published" and published["released"]
    assert published["contributed"] == ["kobe", "nict", "osaka"] and not published["waiting"]
    assert waiting["status"] == "waiting" and waiting["contributed"] == ["kobe"]
    assert waiting["waiting"] == ["nict", "osaka"] and waiting["model"] is None
    # the accuracy shown is the party's report, and the report is right about the model
    report = json.loads((served.data / "nict-evaluation.json").read_text())
    shown = published["model"]["evaluations"]
    assert [e["party"] for e in shown] == ["nict"]
    assert shown[0]["accuracy"] == report["accuracy"]
    model = ELM.load(served.ppml_state / "rounds" / "published" / "model.npz")
    glass = datasets.load("glass", 0)
    assert report["accuracy"] == float(np.mean(model.predict(glass.X_test) == glass.y_test))
    assert report["rows"] == len(glass.y_test) and report["accuracy"] > 0.5
    # counts and rates only: nothing per row, no feature value
    assert set(report) == {"format", "round", "party", "rows", "accuracy", "per_class",
                           "model_sha256", "evaluated_at"}
    for cls, entry in report["per_class"].items():
        assert set(entry) == {"rows", "recall"} and isinstance(entry["rows"], int)
        assert entry["recall"] is None or 0 <= entry["recall"] <= 1
        assert entry["rows"] == int(np.sum(glass.y_test == int(cls)))
    assert page.status_code == 200
    assert f"nict: {100 * report['accuracy']:.1f}%" in page.text
    assert "waiting" in page.text and "nict, osaka" in page.text
