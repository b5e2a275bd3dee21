"""Labelling through the API: the append-only history, the model preview that the same
online step computes, undo, and Cohen's kappa between two experts."""

from __future__ import annotations

import httpx
import numpy as np

from darkscope.backscatter import persist
from darkscope.backscatter.model import REVIEW
from darkscope.backscatter.online import learn_expert_labels
from darkscope.store import ReviewStore

from .conftest import login


def _expert(served, name: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=served.url, timeout=60)
    return client, login(client, name)


def test_two_experts_label_history_preview_undo_and_kappa(served) -> None:
    alice, alice_csrf = _expert(served, "alice")
    bob, bob_csrf = _expert(served, "bob")
    queue = alice.get("/api/v1/review/queue").json()
    assert queue["model_version"] and len(queue["items"]) >= 4
    confidences = [i["confidence"] for i in queue["items"]]
    assert confidences == sorted(confidences)  # least confident first
    items = queue["items"][:4]
    history_before = len(alice.get("/api/v1/review/history").json())

    # the preview must equal the same step applied to a fresh copy of the model, and each
    # label carries the working model's version and confidence at review time
    reference = persist.load(served.model)
    base_version, updates = queue["model_version"], 0
    votes = {"alice": ["ddos", "ddos", "scan", "scan"], "bob": ["ddos", "scan", "scan", "scan"]}
    for who, client, csrf in (("alice", alice, alice_csrf), ("bob", bob, bob_csrf)):
        for item, label in zip(items, votes[who], strict=True):
            answer = client.post("/api/v1/review/labels", headers={"X-CSRF-Token": csrf},
                                 json={"src": item["src"], "window_start": item["window_start"],
                                       "label": label})
            assert answer.status_code == 200, answer.text
            with ReviewStore(served.store) as store:
                labelled = [i for i in store.items() if i.src == item["src"]
                            and i.window_start == item["window_start"]]
                pending = store.items(pending_only=True)
            _, before, _ = reference.model.decide(np.array([labelled[0].features]))
            expected = learn_expert_labels(reference, labelled, pending)
            body = answer.json()
            assert body["label"]["who"] == who and body["label"]["label"] == label
            assert body["label"]["score"] == float(before[0])
            assert body["label"]["model_version"] == base_version + (
                f"+{updates}" if updates else "")
            updates += expected is not None
            if expected is None:
                assert body["update"] is None
            else:
                assert body["update"] == {"learnt": expected.learnt,
                                          "pending": expected.pending,
                                          "now_decided": expected.now_decided}
    with ReviewStore(served.store) as store:
        pending = store.items(pending_only=True)
    verdict, _, _ = reference.model.decide(np.array([i.features for i in pending]))
    final = bob.get("/api/v1/review/queue").json()
    assert final["counts"]["pending"] == len(pending)
    assert int((verdict != REVIEW).sum()) == body["update"]["now_decided"]

    history = alice.get("/api/v1/review/history").json()
    assert len(history) == history_before + 8
    latest = history[0]
    assert (latest["who"], latest["label"], latest["previous"]) == ("bob", "scan", "scan")
    assert history[3]["previous"] == "ddos" and history[3]["who"] == "bob"  # bob's 1st: alice's

    agreement = alice.get("/api/v1/review/agreement").json()
    (pair,) = [p for p in agreement["pairs"] if p["experts"] == ["alice", "bob"]]
    # alice ddos,ddos,scan,scan vs bob ddos,scan,scan,scan: p_o = 0.75, p_e = 0.5, kappa 0.5
    assert pair["items"] == 4 and pair["agreement"] == 0.75
    assert abs(pair["kappa"] - 0.5) < 1e-12
    disputed = {(d["src"], d["window_start"]) for d in agreement["disagreements"]}
    assert disputed == {(items[1]["src"], items[1]["window_start"])}

    undo = bob.post("/api/v1/review/undo", headers={"X-CSRF-Token": bob_csrf})
    assert undo.status_code == 200
    assert undo.json()["label"]["label"] == "scan" and undo.json()["label"]["undoes"]
    # undo unlearns: the working model is the loaded one with the labels standing now
    rebuilt = persist.load(served.model)
    with ReviewStore(served.store) as store:
        standing = [i for i in store.items() if i.label is not None and
                    any((i.src, i.window_start) == (x["src"], x["window_start"]) for x in items)]
        expected = learn_expert_labels(rebuilt, standing, store.items(pending_only=True))
    assert len(standing) == 4 and expected is not None
    assert undo.json()["update"]["now_decided"] == expected.now_decided
    assert undo.json()["model_version"] == base_version + f"+{updates + 1}"
    after = alice.get("/api/v1/review/history").json()
    assert len(after) == len(history) + 1 and after[0]["previous"] == "scan"
    again = bob.post("/api/v1/review/undo", headers={"X-CSRF-Token": bob_csrf})
    assert again.status_code == 200  # an undo of the undo re-applies, never an error page
    assert again.json()["label"]["undoes"] == undo.json()["label"]["id"]
    nothing = httpx.Client(base_url=served.url, timeout=60)
    csrf = login(nothing, "admin")  # admin outranks expert and has labelled nothing
    assert nothing.post("/api/v1/review/undo", headers={"X-CSRF-Token": csrf}
                        ).status_code == 404
    nothing.close()
    alice.close()
    bob.close()
