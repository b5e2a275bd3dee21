"""On 2,000 real Agora listings (research-only sample read from ../shared, never copied)."""

import numpy as np
import pytest

from darkscope.topics.listings import read_listings
from darkscope.topics.pipeline import fit_listings, with_default_market
from darkscope.topics.preprocess import product_key

FRAUD_WORDS = {"carding", "card", "cards", "cc", "cvv", "paypal", "hacking", "guide", "method",
               "cashout", "dumps", "fullz"}


@pytest.fixture(scope="module")
def agora_result(agora_path):
    listings = with_default_market(read_listings(agora_path), "agora")
    return listings, fit_listings(listings, 8, seed=0)


def test_fraud_and_hacking_goods_form_a_topic(agora_result):
    _, result = agora_result
    tops = [{w for w, _ in t["words"][:12]} for t in result.summary["topics"]]
    assert max(len(top & FRAUD_WORDS) for top in tops) >= 3, tops


def test_real_listings_get_mixtures_and_distinct_products(agora_result):
    listings, result = agora_result
    assert listings.num_rows == 2000
    mixtures = result.model.doc_topic_
    has_words = ~np.isnan(mixtures).any(axis=1)
    assert has_words.mean() > 0.99
    np.testing.assert_allclose(mixtures[has_words].sum(axis=1), 1.0, atol=1e-4)
    for topic in result.summary["topics"]:
        keys = product_key([p["title"] for p in topic["products"]])
        assert len(set(keys)) == len(keys) == 10
    periods = {t["period"] for t in result.summary["trends"]}
    assert periods == {"2014-01-01", "2014-01-09", "2014-01-16", "2014-01-26"}  # crawl dates
