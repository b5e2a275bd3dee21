"""Admins manage users and API tokens in the web app; SOC tools call the API with a token;
login attempts are limited; the review page measures accuracy on the evaluation slice."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from darkscope.backscatter import persist
from darkscope.store import ReviewStore
from darkscope.web.review import _wilson, in_evaluation_slice
from darkscope.web.security import LoginLimiter

from .conftest import PASSWORD, login


def _session(served, name: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=served.url, timeout=60, follow_redirects=False)
    return client, login(client, name)


def _bearer(served, token: str) -> httpx.Client:
    return httpx.Client(base_url=served.url, timeout=60, follow_redirects=False,
                        headers={"Authorization": f"Bearer {token}"})


def test_evaluation_slice_accuracy_uses_the_guess_made_before_each_label(served) -> None:
    expert, csrf = _session(served, "alice")
    before = expert.get("/api/v1/review/evaluation").json()
    items = expert.get("/api/v1/review/queue", params={"slice": "evaluation"}).json()["items"]
    if len(items) < 3:
        pytest.skip(f"the held-out day queued only {len(items)} evaluation-slice items")
    first = items[0]
    # first in this module, so the first label meets the saved model, unchanged: its guess
    # must be the saved model's
    with ReviewStore(served.store) as store:
        queued = {(i.src, i.window_start): i for i in store.items()}
    reference = persist.load(served.model)
    features = np.array([queued[(first["src"], first["window_start"])].features])
    p_first = float(reference.model.predict_proba(features)[0, 1])
    labels = ["ddos", "scan", "other", "ddos"]
    for item, label in zip(items[:4], labels, strict=False):
        answer = expert.post("/api/v1/review/labels", headers={"X-CSRF-Token": csrf},
                             json={"src": item["src"], "window_start": item["window_start"],
                                   "label": label})
        assert answer.status_code == 200
    after = expert.get("/api/v1/review/evaluation").json()
    n = len(items[:4])
    assert after["scored"] - before["scored"] == n and after["labelled"] - before["labelled"] == n
    with ReviewStore(served.store) as store:
        guesses = store.guesses()
        history = store.history()
        standing = store.labels()
    first_row = next(h for h in reversed(history) if h.src == first["src"]
                     and h.window_start == first["window_start"])
    assert guesses[first_row.id].p_ddos == pytest.approx(p_first)
    # recount from the store: each slice item's earliest guess against its standing label
    right = total = 0
    for key, label in standing.items():
        item = queued.get(key)
        if item is None or not in_evaluation_slice(item):
            continue
        rows = [h for h in reversed(history) if (h.src, h.window_start) == key
                and h.id in guesses]
        if rows:
            total += 1
            right += (guesses[rows[0].id].predicted == "ddos") == (label.label == "ddos")
    assert (after["scored"], after["correct"]) == (total, right)
    assert after["accuracy"] == pytest.approx(right / total)
    assert after["interval95"] == pytest.approx(list(_wilson(right, total)))
    # an expert who withdraws a label takes that item out; the guesses stay as they were
    assert expert.post("/api/v1/review/undo", headers={"X-CSRF-Token": csrf}).status_code == 200
    undone = expert.get("/api/v1/review/evaluation").json()
    assert (undone["labelled"], undone["scored"]) == (after["labelled"] - 1, after["scored"] - 1)
    with ReviewStore(served.store) as store:
        assert store.guesses() == guesses
        # a slice item labelled outside the dashboard has no guess: counted, not scored
        seen = {(h.src, h.window_start) for h in store.history()}
        spare = next(i for i in store.items(pending_only=True) if in_evaluation_slice(i)
                     and (i.src, i.window_start) not in seen)
        store.label(spare.src, "scan", window_start=spare.window_start, who="cli")
    final = expert.get("/api/v1/review/evaluation").json()
    assert (final["labelled"], final["scored"]) == (undone["labelled"] + 1, undone["scored"])
    page = expert.get("/review").text
    assert f"<strong>{final['correct']} of {final['scored']}</strong>" in page


def test_api_tokens_act_as_their_user_with_at_most_their_role(served) -> None:
    admin, csrf = _session(served, "admin")
    made = admin.post("/api/v1/admin/tokens", headers={"X-CSRF-Token": csrf},
                      json={"user": "alice", "label": "SIEM pull", "role": "viewer"})
    assert made.status_code == 201, made.text
    reader = made.json()
    assert reader["role"] == "viewer" and reader["token"].startswith("dsk_")
    listed = admin.get("/api/v1/admin/users").json()["tokens"]
    assert [t["id"] for t in listed if t["label"] == "SIEM pull"] == [reader["id"]]
    assert all("token" not in t and "token_hash" not in t for t in listed)
    no_csrf = admin.post("/api/v1/admin/tokens", json={"user": "alice", "label": "x"})
    assert no_csrf.status_code == 403

    with _bearer(served, reader["token"]) as soc:
        overview = soc.get("/api/v1/overview")
        assert overview.status_code == 200
        assert overview.json() == admin.get("/api/v1/overview").json()
        assert soc.get("/api/v1/me").json()["role"] == "viewer"
        item = soc.get("/api/v1/review/queue").json()["items"][0]
        refused = soc.post("/api/v1/review/labels", json={
            "src": item["src"], "window_start": item["window_start"], "label": "scan"})
        assert refused.status_code == 403  # alice is an expert, her viewer token is not
        assert soc.get("/").status_code == 303  # tokens open the API, not the pages
        assert soc.get("/api/v1/admin/users").status_code == 403

    labeller = admin.post("/api/v1/admin/tokens", headers={"X-CSRF-Token": csrf},
                          json={"user": "alice", "label": "triage bot"}).json()
    assert labeller["role"] == "expert"
    with _bearer(served, labeller["token"]) as bot:
        # no CSRF token: a bearer header is never sent by a browser on its own
        labelled = bot.post("/api/v1/review/labels", json={
            "src": item["src"], "window_start": item["window_start"], "label": "scan"})
        assert labelled.status_code == 200, labelled.text
        assert labelled.json()["label"]["who"] == "alice"
        # lowering the user lowers the token at once
        lowered = admin.patch("/api/v1/admin/users/alice", headers={"X-CSRF-Token": csrf},
                              json={"role": "viewer"})
        assert lowered.status_code == 200 and lowered.json()["role"] == "viewer"
        assert bot.get("/api/v1/me").json()["role"] == "viewer"
        admin.patch("/api/v1/admin/users/alice", headers={"X-CSRF-Token": csrf},
                    json={"role": "expert"})
        assert admin.delete(f"/api/v1/admin/tokens/{labeller['id']}",
                            headers={"X-CSRF-Token": csrf}).status_code == 204
        revoked = bot.get("/api/v1/me")
        assert revoked.status_code == 401 and "revoked" in revoked.json()["detail"]
        assert revoked.headers["www-authenticate"].startswith("Bearer")
    with _bearer(served, reader["token"] + "x") as wrong:
        assert wrong.get("/api/v1/overview").status_code == 401
    with ReviewStore(served.store) as store:
        raw = store._db.execute("SELECT token_hash, last_used_at FROM api_tokens "
                                "WHERE id=?", (reader["id"],)).fetchone()
    assert reader["token"] not in raw[0] and raw[1] is not None  # hashed; use recorded


def test_admins_manage_users_in_the_web_app_and_keep_one_admin(served) -> None:
    admin, csrf = _session(served, "admin")

    def form(**fields: str) -> str:
        answer = admin.post("/admin", data={"csrf": csrf, **fields})
        assert answer.status_code == 303 and answer.headers["location"] == "/admin"
        page = admin.get("/admin")
        assert page.status_code == 200
        return page.text

    page = form(action="add", name="dora", role="expert", password="dora's long password")
    assert "user dora (expert) added" in page
    users = {u["name"]: u["role"] for u in admin.get("/api/v1/admin/users").json()["users"]}
    assert users["dora"] == "expert"
    with httpx.Client(base_url=served.url, timeout=60) as dora:
        dora.get("/login")
        ok = dora.post("/login", data={"name": "dora", "password": "dora's long password",
                                       "login_token": dora.cookies.get("ds_login")})
        assert ok.status_code == 303
        assert dora.get("/admin").status_code == 403  # experts do not manage users
        assert "not done" in form(action="password", name="dora", password="short")
        form(action="password", name="dora", password="dora's newer password")
        assert dora.get("/api/v1/me").status_code == 401  # a new password ends sessions
    assert "dora is now viewer" in form(action="role", name="dora", role="viewer")
    page = form(action="token", name="dora", label="<b>hostile</b>", role="", days="7")
    assert "copy it now" in page and "&lt;b&gt;hostile&lt;/b&gt;" in page
    assert "<b>hostile</b>" not in page
    assert "not done" in form(action="token", name="dora", label="x", role="admin")
    assert "last admin" in form(action="role", name="admin", role="viewer")
    assert "last admin" in form(action="remove", name="admin")
    assert "user dora removed" in form(action="remove", name="dora")
    assert "dora" not in {u["name"] for u in admin.get("/api/v1/admin/users").json()["users"]}
    assert all(t["user"] != "dora" for t in admin.get("/api/v1/admin/users").json()["tokens"])
    forged = admin.post("/admin", data={"csrf": "wrong", "action": "remove", "name": "bob"})
    assert forged.status_code == 403
    assert "bob" in {u["name"] for u in admin.get("/api/v1/admin/users").json()["users"]}
    viewer, _ = _session(served, "victor")
    assert viewer.get("/api/v1/admin/users").status_code == 403


def test_repeated_failed_logins_lock_that_name_not_others(served) -> None:
    def attempt(name: str, password: str) -> httpx.Response:
        with httpx.Client(base_url=served.url, timeout=60) as client:
            client.get("/login")
            return client.post("/login", data={"name": name, "password": password,
                                               "login_token": client.cookies.get("ds_login")})

    for _ in range(5):
        assert attempt("bob", "a wrong guess!").status_code == 401
    locked = attempt("bob", PASSWORD)   # even the right password waits
    assert locked.status_code == 429 and "Too many failed attempts: try again in" in locked.text
    assert 0 < int(locked.headers["retry-after"]) <= 900
    assert attempt("Bob", PASSWORD).status_code == 429  # names are matched case-blind
    assert attempt("victor", PASSWORD).status_code == 303


def test_login_limiter_windows_per_name_and_per_client() -> None:
    now = [1000.0]
    limiter = LoginLimiter(per_name=3, per_client=5, window_s=60, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.wait_s("eve", "10.0.0.1") == 0
        limiter.failed("eve", "10.0.0.1")
    assert limiter.wait_s("eve", "10.0.0.2") == 61   # the name is locked from anywhere
    limiter.failed("mallory", "10.0.0.1")
    limiter.failed("trent", "10.0.0.1")
    assert limiter.wait_s("peggy", "10.0.0.1") == 61  # five from one address: it waits
    assert limiter.wait_s("peggy", "10.0.0.9") == 0
    now[0] += 30
    limiter.succeeded("eve")
    assert limiter.wait_s("eve", "10.0.0.2") == 0
    now[0] += 31
    assert limiter.wait_s("peggy", "10.0.0.1") == 0   # failures leave the window


def test_wilson_interval_matches_published_values() -> None:
    low, high = _wilson(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    assert _wilson(0, 0) == (0.0, 1.0)
    low, high = _wilson(20, 20)
    assert high == 1.0 and round(low, 4) == 0.8389
