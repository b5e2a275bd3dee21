"""The dark web pages against the crawl and topic model under --data, with hostile strings."""

from __future__ import annotations

import json

import httpx

from .conftest import HOSTILE, HOSTILE_URL, login


def _crawled(served) -> list[dict]:
    lines = (served.data / "crawl" / "listings.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_markets_listings_and_topics_agree_with_the_crawl_and_the_model(served) -> None:
    crawled = _crawled(served)
    summary = json.loads((served.data / "topics" / "topics.json").read_text())
    with httpx.Client(base_url=served.url, timeout=60) as client:
        login(client, "victor")
        found = client.get("/api/v1/darkweb").json()
        narrowed = client.get("/api/v1/darkweb", params={"q": "stealer"}).json()
    markets = {m["market"]: m for m in found["markets"]}
    # the topics directory keeps a copy of the crawl: each listing is counted once
    assert markets["testmarket"]["listings"] == len({r["url"] for r in crawled})
    assert markets["testmarket"]["vendors"] == len({r["vendor"] for r in crawled})
    assert markets[HOSTILE]["listings"] == 1
    assert [m["path"] for m in found["models"]] == ["topics"]
    model = found["models"][0]
    assert [t["label"] for t in model["topics"]] == [t["label"] for t in summary["topics"]]
    for mine, theirs in zip(model["topics"], summary["topics"], strict=True):
        assert mine["words"] == theirs["words"][:12]
        assert [p["url"] for p in mine["products"]] == [p["url"] for p in theirs["products"][:5]]
        assert [t["prevalence"] for t in mine["trend"]] == [
            t["prevalence"][theirs["id"]] for t in summary["trends"]]
    want = sorted(r["url"] for r in crawled if "stealer" in r["title"].lower())
    assert sorted(r["url"] for r in narrowed["listings"]) == want and want


def test_a_listing_page_shows_its_versions_and_topic_and_escapes_everything(served) -> None:
    crawled = _crawled(served)
    summary = json.loads((served.data / "topics" / "topics.json").read_text())
    first = crawled[0]
    with httpx.Client(base_url=served.url, timeout=60) as client:
        login(client, "victor")
        found = client.get("/api/v1/darkweb/listing", params={"url": first["url"]}).json()
        page = client.get("/darkweb/listing", params={"url": first["url"]})
        hostile = client.get("/darkweb/listing", params={"url": HOSTILE_URL})
        overview = client.get("/darkweb")
        missing = client.get("/api/v1/darkweb/listing", params={"url": "http://nowhere/"})
    assert [v["title"] for v in found["versions"]] == [first["title"]]
    doc = next(d for d in summary["documents"] if d["url"] == first["url"])
    assert [t["topic"] for t in found["topics"]] == [doc["topic"]]
    assert page.status_code == 200
    # the market's markup in a description is text on our page, not markup
    assert "&lt;b&gt;escrow&lt;/b&gt;" in page.text and "<b>escrow</b>" not in page.text
    assert hostile.status_code == 200
    for text in (hostile.text, overview.text):
        assert HOSTILE not in text and "<script>window.pwned" not in text
        assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in text
    assert missing.status_code == 404
