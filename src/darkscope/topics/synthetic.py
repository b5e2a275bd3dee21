"""Listings drawn from planted topics, so topic recovery can be measured against the truth.

Each planted topic owns a set of made-up words with Zipf-like weights; every listing mixes a few
topics (sparse Dirichlet) plus shared background words, the way a listing mixes its product's
vocabulary with generic sales words. One market over-represents topic 0, so trends have a known
answer too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "kr",
           "tr", "st", "pl", "gr")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou")


@dataclass(frozen=True)
class PlantedCorpus:
    """Listings as dicts, the planted topic-word distributions and each listing's mixture."""

    listings: list[dict[str, str]]
    topic_words: np.ndarray  # (k, vocabulary) rows sum to 1
    vocabulary: np.ndarray
    mixtures: np.ndarray  # (documents, k)

    def top_words(self, topic: int, n: int = 20) -> list[str]:
        order = np.argsort(-self.topic_words[topic], kind="stable")[:n]
        return [str(w) for w in self.vocabulary[order]]


def _pseudo_words(count: int, rng: np.random.Generator) -> np.ndarray:
    words: set[str] = set()
    while len(words) < count:
        syllables = rng.integers(2, 4)
        words.add("".join(_ONSETS[rng.integers(len(_ONSETS))] + _VOWELS[rng.integers(len(_VOWELS))]
                          for _ in range(syllables)))
    return np.array(sorted(words), dtype=object)[rng.permutation(count)]


def planted_corpus(n_documents: int = 2000, k: int = 6, words_per_topic: int = 40,
                   background_words: int = 200, mean_length: int = 30,
                   background_share: float = 0.15, alpha: float = 0.1,
                   seed: int = 0) -> PlantedCorpus:
    """Generate ``n_documents`` listings from ``k`` planted topics (markets "alpha"/"hansa")."""
    rng = np.random.default_rng(seed)
    vocabulary = _pseudo_words(k * words_per_topic + background_words, rng)
    zipf = 1.0 / np.arange(1, words_per_topic + 1) ** 0.8
    topic_words = np.zeros((k, vocabulary.size))
    for topic in range(k):
        topic_words[topic, topic * words_per_topic:(topic + 1) * words_per_topic] = (
            zipf / zipf.sum())
    background = np.zeros(vocabulary.size)
    background[k * words_per_topic:] = 1.0 / background_words

    markets = np.where(rng.random(n_documents) < 0.5, "alpha", "hansa")
    alphas = np.full((n_documents, k), alpha)
    alphas[markets == "hansa", 0] *= 4  # the planted trend: hansa sells more of topic 0
    mixtures = rng.gamma(alphas)
    mixtures /= mixtures.sum(axis=1, keepdims=True)
    lengths = np.maximum(rng.poisson(mean_length, n_documents), 6)

    # Draw every token at once: its source (background or a topic), then its word.
    doc_of_token = np.repeat(np.arange(n_documents), lengths)
    cumulative = np.cumsum(mixtures, axis=1)[doc_of_token]
    topic_of_token = (rng.random(doc_of_token.size)[:, None] > cumulative).sum(axis=1)
    topic_of_token = np.minimum(topic_of_token, k - 1)
    word_cdf = np.cumsum(topic_words, axis=1)
    tokens = np.empty(doc_of_token.size, dtype=np.int64)
    for topic in range(k):
        mask = topic_of_token == topic
        tokens[mask] = np.searchsorted(word_cdf[topic], rng.random(mask.sum()), side="right")
    from_background = rng.random(doc_of_token.size) < background_share
    tokens[from_background] = k * words_per_topic + rng.integers(
        background_words, size=from_background.sum())
    tokens = np.minimum(tokens, vocabulary.size - 1)

    words = vocabulary[tokens]
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    days = rng.integers(1, 29, n_documents)
    listings = []
    for i in range(n_documents):
        text = words[starts[i]:starts[i] + lengths[i]]
        listings.append({
            "market": str(markets[i]),
            "url": f"http://{markets[i]}example.onion/listing/{i}",
            "title": " ".join(text[:5]).title() + f" {rng.integers(1, 50)}g",
            "description": " ".join(text[5:]),
            "price": f"{rng.uniform(0.01, 2):.4f}",
            "currency": "BTC",
            "vendor": f"vendor{rng.integers(0, 40)}",
            "crawled_at": f"2017-06-{days[i]:02d}",
        })
    return PlantedCorpus(listings, topic_words, vocabulary, mixtures)
