import itertools

import numpy as np
import pyarrow as pa
import pytest

from darkscope.topics.listings import FIELDS
from darkscope.topics.pipeline import fit_listings
from darkscope.topics.report import render_report
from darkscope.topics.summary import SummaryOptions, crawl_periods

from .conftest import matching


def as_table(rows):
    return pa.table({f: pa.array([r.get(f) for r in rows], pa.string()) for f in FIELDS})


@pytest.fixture(scope="module")
def result(planted):
    return fit_listings(as_table(planted.listings), 6, seed=2,
                        options=SummaryOptions(period="month"))


def test_topics_json_shape(result, planted):
    summary = result.summary
    assert set(summary) == {"model", "topics", "documents", "trends"}
    topic = summary["topics"][0]
    assert {"id", "label", "words", "products"} <= set(topic)
    assert len(topic["words"]) == 20 and all(isinstance(w, str) for w, _ in topic["words"])
    weights = [w for _, w in topic["words"]]
    assert weights == sorted(weights, reverse=True)
    assert len(summary["documents"]) == len(planted.listings)
    doc = summary["documents"][0]
    assert doc["topic"] == int(np.argmax(doc["mixture"]))


def test_representative_products_are_dominated_by_their_topic_and_distinct(result):
    for topic in result.summary["topics"]:
        products = topic["products"]
        assert len(products) == 10
        assert all(p["share"] >= 0.5 for p in products)
        keys = [p["title"].rsplit(" ", 1)[0].lower() for p in products]  # title minus "12g"
        assert len(set(keys)) == len(keys)
        shares = [round(p["share"], 2) for p in products]
        assert shares == sorted(shares, reverse=True)
        for a, b in itertools.pairwise(products):
            if round(a["share"], 2) == round(b["share"], 2):
                assert a["typicality"] >= b["typicality"]  # ties by typical words


def test_trend_shows_planted_market_difference(result, planted):
    to_found = matching(planted, result.model.vocabulary_, result.model.topic_word_)
    topic = to_found[0]  # the planted generator gives market "hansa" 4x the prior on topic 0
    trends = {t["market"]: t for t in result.summary["trends"]}
    assert set(trends) == {"alpha", "hansa"}
    assert trends["hansa"]["prevalence"][topic] > 1.5 * trends["alpha"]["prevalence"][topic]
    assert sum(t["listings"] for t in trends.values()) == len(planted.listings)


def test_crawl_periods():
    values = pa.chunked_array([["2017-07-19T10:00:00Z", "2017-07-23", "bad", None,
                                "2017-13-45"]])
    assert crawl_periods(values, "day").tolist() == [
        "2017-07-19", "2017-07-23", "unknown", "unknown", "unknown"]
    assert crawl_periods(values, "week").tolist()[:2] == ["2017-07-17", "2017-07-17"]
    assert crawl_periods(values, "month").tolist()[:2] == ["2017-07", "2017-07"]


def test_near_duplicate_products_collapse_and_untrusted_text_is_escaped():
    rows = []
    for i in range(40):
        rows.append({"title": f"Remote access trojan botnet panel v{i % 3}.0 <script>alert(1)"
                              "</script>", "description": "rat botnet panel remote access "
                              "trojan crypter stub", "market": "m<i>", "url": f"u{i}"})
        rows.append({"title": f"Weed kush {i}g", "description": "weed kush indica buds strain "
                     "thc sativa", "market": "m<i>", "url": f"w{i}"})
    result = fit_listings(as_table(rows), 2, seed=0)
    for topic in result.summary["topics"]:
        assert len(topic["products"]) == 1  # 40 listings of one product in varying amounts
        assert topic["products"][0]["duplicates"] == 40
    html = render_report(result.summary)
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "m&lt;i&gt;" in html and "<i>" not in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")  # nothing fetched


def test_listings_without_words_are_kept_and_flagged(planted):
    rows = [*planted.listings[:300], {"title": "<b>10 mg</b>", "description": "free shipping"},
            {"title": None, "description": None}]
    result = fit_listings(as_table(rows), 4, seed=0)
    summary = result.summary
    assert summary["model"]["listings"] == 302
    assert summary["model"]["listings_without_words"] == 2
    assert [d["topic"] for d in summary["documents"][-2:]] == [None, None]
    assert all(d["mixture"] is not None for d in summary["documents"][:300])
    assert sum(t["listings"] for t in summary["trends"]) == 300
