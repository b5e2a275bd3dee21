import json

import numpy as np
import pytest

from darkscope.errors import DarkscopeError
from darkscope.topics.model import (
    EmptyCorpusError,
    ListingTopicModel,
    SamplerSettings,
    fit_best_k,
)
from darkscope.topics.preprocess import listing_text
from darkscope.topics.synthetic import planted_corpus

from .conftest import best_overlap, matching


def texts_of(corpus):
    return listing_text([r["title"] for r in corpus.listings],
                        [r["description"] for r in corpus.listings])


@pytest.fixture(scope="module")
def fitted(planted):
    return ListingTopicModel(6, seed=3).fit(texts_of(planted))


def test_each_planted_topic_is_recovered(planted, fitted):
    overlaps = best_overlap(planted, fitted.vocabulary_, fitted.topic_word_)
    assert min(overlaps) >= 0.6, overlaps
    # One found topic per planted topic, not one topic matching several.
    assert len(set(matching(planted, fitted.vocabulary_, fitted.topic_word_).values())) == 6


def test_learned_attributes_are_consistent(planted, fitted):
    assert fitted.topic_word_.shape == (6, fitted.vocabulary_.size)
    np.testing.assert_allclose(fitted.topic_word_.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(fitted.doc_topic_.sum(axis=1), 1.0, atol=1e-4)
    assert fitted.coherence_.shape == (6,) and np.all(fitted.coherence_ > 0.2)
    shares = np.nanmean(fitted.doc_topic_, axis=0)
    assert shares[0] >= shares[-1]  # topics ordered by prevalence


def test_same_seed_same_model_other_seed_other_chain(planted):
    texts = texts_of(planted)[:600]
    a = ListingTopicModel(4, seed=5).fit(texts)
    b = ListingTopicModel(4, seed=5).fit(texts)
    c = ListingTopicModel(4, seed=6).fit(texts)
    np.testing.assert_array_equal(a.topic_word_, b.topic_word_)
    np.testing.assert_array_equal(a.doc_topic_, b.doc_topic_)
    assert not np.array_equal(a.doc_topic_, c.doc_topic_)


def test_held_out_listings_get_their_planted_topic(planted, fitted):
    # The same seed plants the same topics; another corpus size draws other listings.
    fresh = planted_corpus(n_documents=1900, k=6, seed=11)
    assert fresh.vocabulary.tolist() == planted.vocabulary.tolist()
    new = slice(1500, 1900)
    mixtures = fitted.transform(texts_of(fresh)[new])
    truth = fresh.mixtures[new]
    clear = truth.max(axis=1) > 0.8
    to_found = matching(planted, fitted.vocabulary_, fitted.topic_word_)
    expected = np.array([to_found[z] for z in truth.argmax(axis=1)])
    accuracy = np.mean(np.nanargmax(mixtures, axis=1)[clear] == expected[clear])
    assert accuracy >= 0.9, accuracy


def test_unknown_words_give_no_mixture(fitted):
    mixtures = fitted.transform(["completely unrelated vocabulary", ""])
    assert np.isnan(mixtures).all()


def test_save_load_round_trip_and_version_check(tmp_path, planted, fitted):
    fitted.save(tmp_path / "m")
    loaded = ListingTopicModel.load(tmp_path / "m")
    texts = texts_of(planted)[:50]
    np.testing.assert_array_equal(loaded.transform(texts), fitted.transform(texts))
    np.testing.assert_array_equal(loaded.topic_word_, fitted.topic_word_)

    meta_path = tmp_path / "m" / "model.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "engine_version": "0.1.0"}))
    with pytest.raises(DarkscopeError, match=r"tomotopy 0\.1\.0"):
        ListingTopicModel.load(tmp_path / "m")
    meta_path.write_text(json.dumps({**meta, "format": 999}))
    with pytest.raises(DarkscopeError, match="format 999"):
        ListingTopicModel.load(tmp_path / "m")
    with pytest.raises(DarkscopeError, match=r"no model\.json"):
        ListingTopicModel.load(tmp_path)


def test_bad_corpora_have_clear_errors():
    with pytest.raises(EmptyCorpusError, match="input is empty"):
        ListingTopicModel(3).fit([])
    with pytest.raises(EmptyCorpusError, match="none of the 3 listings"):
        ListingTopicModel(3).fit(["<b>10 mg</b>", "free shipping!", "&nbsp;"])
    with pytest.raises(DarkscopeError, match="k=5 topics is more than the 2 listings"):
        ListingTopicModel(5).fit(["botnet ddos", "botnet ddos"])


def test_k_search_finds_the_planted_number_of_topics(planted):
    model, search = fit_best_k(texts_of(planted), range(3, 10), seed=0)
    assert search.best_k == 6 == model.n_topics
    assert set(search.scores) == set(range(3, 10))
    assert search.scores[6] > search.scores[3]


def test_update_with_a_new_crawl_keeps_topic_ids(planted):
    texts = texts_of(planted)
    model = ListingTopicModel(6, seed=1).fit(texts[:700])
    before = model.topic_word_.copy()
    model.update(texts[700:])
    assert model.doc_topic_.shape == (len(texts), 6)
    for topic in range(6):  # topic t after the update is topic t before it
        old = set(np.argsort(-before[topic])[:20])
        new = set(np.argsort(-model.topic_word_[topic])[:20])
        assert len(old & new) / 20 >= 0.8
    assert min(best_overlap(planted, model.vocabulary_, model.topic_word_)) >= 0.6


def test_sampler_options(planted, fitted):
    """A random start with coherence-selected restarts is seeded (same seed, same topics),
    differs from the NMF start, and still finds most planted topics."""
    texts = texts_of(planted)
    settings = SamplerSettings(init="random", restarts=2, select_by="coherence")
    random_start = ListingTopicModel(6, seed=3, sampler=settings).fit(texts)
    again = ListingTopicModel(6, seed=3, sampler=settings).fit(texts)
    np.testing.assert_array_equal(random_start.topic_word_, again.topic_word_)
    assert not np.allclose(random_start.topic_word_, fitted.topic_word_)
    overlaps = best_overlap(planted, random_start.vocabulary_, random_start.topic_word_)
    assert sum(o >= 0.8 for o in overlaps) >= 3, overlaps
    with pytest.raises(DarkscopeError, match="init must be"):
        ListingTopicModel(3, sampler=SamplerSettings(init="lsa")).fit(texts)
    with pytest.raises(DarkscopeError, match="select_by must be"):
        ListingTopicModel(3, sampler=SamplerSettings(restarts=2, select_by="luck")).fit(texts)
