"""The feature map against the verdict table and the review queue."""

from __future__ import annotations

import math

import httpx
import pyarrow.dataset as ds

from .conftest import login


def test_the_map_draws_every_rare_and_queued_window_with_its_verdict(served) -> None:
    verdicts = ds.dataset(served.data / "monitor" / "verdicts", format="parquet",
                          partitioning="hive").to_table(
        columns=["src", "window_start", "verdict"]).to_pylist()
    truth = {(r["src"], int(r["window_start"].timestamp() * 1e9)
              if hasattr(r["window_start"], "timestamp") else r["window_start"]): r["verdict"]
             for r in verdicts}
    with httpx.Client(base_url=served.url, timeout=60) as client:
        login(client, "victor")
        found = client.get("/api/v1/map").json()
        queue = client.get("/api/v1/review/queue", params={"limit": 1000}).json()["items"]
        again = client.get("/api/v1/map").json()
        page = client.get("/map")
    assert found == again  # the same picture at every reload
    points = {(p["src"], p["window_start"]): p for p in found["points"]}
    assert len(points) == len(found["points"])
    rare = {k for k, v in truth.items() if v != "not_ddos"}
    assert rare and rare <= set(points)  # every ddos and needs-review window is drawn
    assert any(p["verdict"] == "not_ddos" for p in found["points"])  # and a sample of the rest
    for key, point in points.items():
        if key in truth:  # the crafted hostile row is not in the monitor's table
            assert point["verdict"] == truth[key]
        assert math.isfinite(point["x"]) and math.isfinite(point["y"])
    queued = {(i["src"], i["window_start"]) for i in queue}
    assert queued and queued <= set(points)
    assert {k for k, p in points.items() if p["queued"]} == queued & set(points)
    assert len(found["axes"]) == 2 and all(len(a["features"]) == 3 for a in found["axes"])
    assert page.status_code == 200
    assert page.text.count("<circle") >= len(found["points"])
    assert page.text.count('class="queued"') >= len(queued)
