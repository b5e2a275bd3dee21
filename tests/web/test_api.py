"""The dashboard's HTTP side against a real server: nothing before login, roles, CSRF, limits,
headers, and page data that agrees with the tables it was computed from."""

from __future__ import annotations

import ipaddress
from collections import Counter

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from .conftest import HOSTILE, HOSTILE_HOST, HOSTILE_PAYLOADS, login

PAGES = ["/", "/attacks", "/review", "/ip/", "/ip/203.0.113.9", "/rules", "/rules/rule?text=x",
         "/map", "/darkweb", "/darkweb/listing?url=x", "/ppml", "/admin"]
API = {"/api/v1/overview", "/api/v1/ip/{address}", "/api/v1/review/queue",
       "/api/v1/review/history", "/api/v1/review/evaluation", "/api/v1/review/agreement",
       "/api/v1/review/labels", "/api/v1/review/undo", "/api/v1/attacks", "/api/v1/rules",
       "/api/v1/rules/rule", "/api/v1/map", "/api/v1/darkweb", "/api/v1/darkweb/listing",
       "/api/v1/ppml", "/api/v1/admin/users", "/api/v1/catalog", "/api/v1/me"}


def _client(served) -> httpx.Client:
    return httpx.Client(base_url=served.url, follow_redirects=False, timeout=60)


def test_nothing_is_shown_before_login(served) -> None:
    with _client(served) as client:
        schema = client.get("/api/openapi.json")   # the schema holds no data
        assert schema.status_code == 200
        paths = schema.json()["paths"]
        assert set(paths) >= API                   # every page's API is documented
        assert all(p.startswith(("/api/v1/", "/taxii2/")) for p in paths)
        for path in PAGES:
            answer = client.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/login?next=")
        for path, methods in paths.items():        # every API the app has, with any method
            if not path.startswith("/api/v1/"):
                continue
            for method in methods:
                answer = client.request(method, path.replace("{address}", "203.0.113.9"),
                                        **({"json": {}} if method != "get" else {}))
                assert answer.status_code == 401, (method, path)
                assert answer.json() == {"detail": "log in first"}


def test_login_needs_the_right_password_and_its_form_token(served) -> None:
    with _client(served) as client:
        client.get("/login")
        token = client.cookies.get("ds_login")
        wrong = client.post("/login", data={"name": "alice", "password": "not it at all",
                                            "login_token": token})
        assert wrong.status_code == 401 and "Wrong name or password" in wrong.text
        assert "ds_session" not in client.cookies
    with _client(served) as client:  # a form posted from elsewhere has no matching cookie
        forged = client.post("/login", data={"name": "alice", "password": "x" * 12,
                                             "login_token": "guess"})
        assert forged.status_code == 403
    with _client(served) as client:
        client.get("/login")
        redirect = client.post("/login", data={
            "name": "victor", "password": "correct horse battery",
            "login_token": client.cookies.get("ds_login"), "next": "//evil.example/"})
        assert redirect.headers["location"] == "/"  # no open redirect off the site
        cookie = redirect.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie


def test_roles_csrf_limits_and_headers(served) -> None:
    with _client(served) as viewer:
        csrf = login(viewer, "victor")
        item = viewer.get("/api/v1/review/queue").json()["items"][0]
        body = {"src": item["src"], "window_start": item["window_start"], "label": "ddos"}
        refused = viewer.post("/api/v1/review/labels", json=body,
                              headers={"X-CSRF-Token": csrf})
        assert refused.status_code == 403 and "expert" in refused.json()["detail"]
        page = viewer.get("/")
        assert page.status_code == 200
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["cache-control"] == "no-store"
    with _client(served) as expert:
        login(expert, "alice")
        item = expert.get("/api/v1/review/queue").json()["items"][0]
        body = {"src": item["src"], "window_start": item["window_start"], "label": "ddos"}
        assert expert.post("/api/v1/review/labels", json=body).status_code == 403  # no token
        assert expert.post("/api/v1/review/labels", json=body,
                           headers={"X-CSRF-Token": "wrong"}).status_code == 403
        huge = expert.post("/review/label", content=b"a=" + b"x" * 200_000,
                           headers={"content-type": "application/x-www-form-urlencoded"})
        assert huge.status_code == 413
        unframed = expert.post("/review/label", content=iter([b"a=1"]),   # chunked
                               headers={"content-type": "application/x-www-form-urlencoded"})
        assert unframed.status_code == 411
        # every form refuses a post without the session's token, and changes nothing
        before = expert.get("/api/v1/review/history").json()
        form = {"src": str(item["src"]), "window_start": str(item["window_start"]),
                "label": "ddos"}
        for path, data in (("/review/label", form), ("/review/undo", {}), ("/logout", {})):
            for token in ({}, {"csrf": "forged"}):
                assert expert.post(path, data={**data, **token}).status_code in (403, 422), \
                    (path, token)
        assert expert.get("/api/v1/review/history").json() == before
        assert expert.get("/api/v1/me").status_code == 200          # still logged in
        for path in ("/review", "/api/v1/overview", "/ip/203.0.113.9"):
            assert "script-src 'self'" in expert.get(path).headers["content-security-policy"]
        assert expert.get("/api/v1/ip/not-an-ip").status_code == 400
        assert expert.get("/api/v1/overview", params={"start": "yesterday"}).status_code == 400
        typed = expert.get("/api/v1/overview?start=2017-03-07T07:00:00+00:00")  # '+' unencoded
        assert typed.status_code == 200
        assert typed.json()["range"]["start"] == "2017-03-07T07:00:00Z"


def test_overview_agrees_with_the_verdict_and_packet_tables(served) -> None:
    verdicts = ds.dataset(served.data / "monitor" / "verdicts", partitioning="hive").to_table()
    columns = ["dport", "proto", "src"]
    packets = pa.concat_tables([   # the monitor's, and the crafted file's
        ds.dataset(served.data / "monitor" / "packets", partitioning="hive").to_table(
            columns=columns),
        pq.read_table(served.data / "crafted-packets.parquet", columns=columns)],
        promote_options="permissive")
    with _client(served) as client:
        login(client, "victor")
        overview = client.get("/api/v1/overview").json()
    totals = overview["totals"]
    want = Counter(verdicts["verdict"].to_pylist())
    want["ddos"] += 1  # the crafted file's row
    assert {k: v["windows"] for k, v in totals.items()} == dict(want)
    hourly_packets = sum(r["packets"] for r in overview["hourly"])
    assert hourly_packets == int(pc.sum(verdicts["packets"]).as_py()) + _crafted_packets(served)
    ports = Counter(zip(packets["proto"].to_pylist(), packets["dport"].to_pylist(),
                        strict=True))
    ports.pop((None, None), None)
    top = [(p["proto"], p["port"], p["packets"]) for p in overview["top_ports"]]
    assert top[0][2] == max(n for (proto, port), n in ports.items() if port is not None)
    assert all(ports[(proto, port)] == n for proto, port, n in top)


def _crafted_packets(served) -> int:
    table = ds.dataset(served.data / "crafted-verdicts.parquet").to_table()
    return int(pc.sum(table["packets"]).as_py())


def test_an_ip_page_holds_that_hosts_verdicts_and_packets(served) -> None:
    verdicts = ds.dataset(served.data / "monitor" / "verdicts", partitioning="hive").to_table()
    ddos = verdicts.filter(pc.equal(verdicts["verdict"], "ddos"))
    host = int(ddos["src"][0].as_py())
    address = str(ipaddress.IPv4Address(host))
    with _client(served) as client:
        login(client, "victor")
        context = client.get(f"/api/v1/ip/{address}").json()
    mine = verdicts.filter(pc.equal(verdicts["src"], host)).sort_by("window_start")
    assert [w["verdict"] for w in context["windows"]] == mine["verdict"].to_pylist()
    assert [w["decided_by"] for w in context["windows"]] == mine["decided_by"].to_pylist()
    assert len(context["windows"][0]["features"]) == 17
    assert np.isclose(context["windows"][0]["confidence"], mine["confidence"][0].as_py())
    packets = ds.dataset(served.data / "monitor" / "packets", partitioning="hive").to_table(
        filter=ds.field("src") == host)
    assert context["packets"] == packets.num_rows > 0
    assert len(context["sample"]) == min(50, packets.num_rows)
    first = next(w for w in context["windows"] if w["verdict"] == "ddos")
    source = (f"model {first['model_version']}" if first["decided_by"] == "model"
              else first["decided_by"])
    assert {"tag": "ddos-victim", "source": source} in context["tags"]


def test_hostile_strings_from_a_crafted_table_render_as_text(served) -> None:
    with _client(served) as client:
        login(client, "victor")
        page = client.get(f"/ip/{HOSTILE_HOST}").text
        sample = client.get(f"/api/v1/ip/{HOSTILE_HOST}").json()["sample"]
    assert HOSTILE not in page and "<script>window.pwned" not in page
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in page
    # payload bytes leave as hex and printable ASCII, never as raw bytes
    assert "<script>pwned" not in page and "\x1b" not in page and "</td><b>" not in page
    assert "|&lt;script&gt;pwned=3&lt;|" in page
    heads = [p["payload_head"] for p in sample]
    assert heads == [f"{raw.hex(' ')}  |{shown}|" for raw, shown in zip(
        HOSTILE_PAYLOADS, ("<script>pwned=3<", "..[2J</td><b>...."), strict=True)]
    assert {p["options"] for p in sample} == {HOSTILE}


def test_outputs_are_found_by_schema_and_foreign_files_skipped(served) -> None:
    with _client(served) as client:
        login(client, "victor")
        catalog = client.get("/api/v1/catalog").json()
    kinds = catalog["files"]
    assert {"packets", "verdicts", "hosts"} <= set(kinds)
    assert "crafted-verdicts.parquet" in kinds["verdicts"]
    assert "notes.parquet" in catalog["skipped"]


def test_attack_filters_keep_exactly_the_matching_victims(served) -> None:
    victims = ds.dataset(served.data / "monitor" / "victims", partitioning="hive").to_table()
    ports = victims["ports"].to_pylist()
    with _client(served) as client:
        login(client, "victor")
        every = client.get("/api/v1/attacks").json()
        on_443 = client.get("/api/v1/attacks", params={"port": 443}).json()
        icmp = client.get("/api/v1/attacks", params={"icmp": "true"}).json()
    assert len(every) == victims.num_rows
    assert len(on_443) == sum("443" in p.split(",") for p in ports) > 0
    assert all("443" in a["ports"].split(",") for a in on_443)
    assert len(icmp) == sum(p.startswith("icmp-") for p in ports) > 0
