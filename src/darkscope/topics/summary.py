"""What an operator reads: per topic its words, a label and representative products; per listing
its mixture; per crawl period and market the topic prevalence (trends).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from darkscope.topics.model import KSearch, ListingTopicModel
from darkscope.topics.preprocess import product_key

PERIODS = ("day", "week", "month")
UNKNOWN = "unknown"


@dataclass(frozen=True)
class SummaryOptions:
    n_words: int = 20
    n_label_words: int = 3
    n_products: int = 10
    period: str = "day"
    relevance_lambda: float = 0.6  # Sievert & Shirley's term relevance for labels
    share_precision: int = 2  # shares equal at this many decimals count as ties
    min_share: float = 0.3  # a listing mostly about something else does not represent a topic


def labels(model: ListingTopicModel, n_words: int = 3, relevance_lambda: float = 0.6) -> list[str]:
    """Short labels from each topic's most *relevant* words (frequent in it, rarer elsewhere)."""
    phi = model.topic_word_
    word_share = np.asarray(model.counts_.sum(axis=0), dtype=np.float64).ravel()
    word_share = np.maximum(word_share / max(word_share.sum(), 1.0), 1e-12)
    with np.errstate(divide="ignore"):
        log_phi = np.log(np.maximum(phi, 1e-300))
    relevance = relevance_lambda * log_phi + (1 - relevance_lambda) * (log_phi - np.log(word_share))
    order = np.argsort(-relevance, axis=1, kind="stable")[:, :n_words]
    return [" · ".join(model.vocabulary_[row]) for row in order]


def typicality(model: ListingTopicModel, counts: sp.csr_matrix) -> np.ndarray:
    """Mean log-probability of a listing's words under each topic (listings x k)."""
    lengths = np.maximum(np.asarray(counts.sum(axis=1)).ravel(), 1)
    log_phi = np.log(np.maximum(model.topic_word_, 1e-300))
    return np.asarray(sp.csr_matrix(counts) @ log_phi.T) / lengths[:, None]


def _text(table: pa.Table, name: str) -> np.ndarray:
    return np.array(table.column(name).fill_null("").to_pylist(), dtype=object)


def representative_products(model: ListingTopicModel, listings: pa.Table,
                            mixtures: np.ndarray, counts: sp.csr_matrix,
                            options: SummaryOptions) -> list[list[dict]]:
    """Per topic, listings with the highest share of it, near-duplicates collapsed.

    Short listings often all have a share of 1.00: among equal shares (at ``share_precision``
    decimals) the listing whose words are most typical of the topic comes first.
    """
    keys = np.array(product_key(listings.column("title").to_pylist()), dtype=object)
    key_counts = Counter(keys.tolist())
    typical = typicality(model, counts)
    valid = ~np.isnan(mixtures).any(axis=1)
    columns = {name: _text(listings, name) for name in
               ("title", "market", "vendor", "price", "currency", "url", "crawled_at")}
    products = []
    for topic in range(model.n_topics):
        share = np.where(valid, np.nan_to_num(mixtures[:, topic]), -1.0)
        order = np.lexsort((np.arange(share.size), -typical[:, topic],
                            -np.round(share, options.share_precision)))
        chosen: list[dict] = []
        seen: set[str] = set()
        for row in order:  # stops after n_products distinct products
            if share[row] < options.min_share or len(chosen) >= options.n_products:
                break
            key = keys[row] or f"#{row}"
            if key in seen:
                continue
            seen.add(key)
            chosen.append({
                **{name: (values[row] or None) for name, values in columns.items()},
                "share": round(float(share[row]), 4),
                "typicality": round(float(typical[row, topic]), 4),
                "listing": int(row),
                "duplicates": key_counts[keys[row]] if keys[row] else 1,
            })
        products.append(chosen)
    return products


def crawl_periods(crawled_at: pa.ChunkedArray, period: str) -> np.ndarray:
    """Day, ISO week (its Monday) or month of each crawl time; "unknown" where unreadable."""
    if period not in PERIODS:
        raise ValueError(f"period must be one of {PERIODS}")
    text = pc.fill_null(crawled_at, "")
    dated = pc.match_substring_regex(text, r"^\d{4}-\d{2}-\d{2}").to_numpy(zero_copy_only=False)
    days = np.array(pc.utf8_slice_codeunits(text, 0, 10).to_pylist(), dtype=object)
    periods = np.full(days.size, UNKNOWN, dtype=object)
    if dated.any():
        try:
            values = days[dated].astype("datetime64[D]")
        except ValueError:  # "2014-13-45": shape right, not a date
            values = np.array([_day_or_nat(d) for d in days[dated]], dtype="datetime64[D]")
        if period == "week":
            monday = np.timedelta64(4, "D")  # 1970-01-05 was a Monday
            values = (values - monday).astype("datetime64[W]").astype("datetime64[D]") + monday
        elif period == "month":
            values = values.astype("datetime64[M]")
        labels_ = np.datetime_as_string(values).astype(object)
        labels_[np.isnat(values)] = UNKNOWN
        periods[dated] = labels_
    return periods


def _day_or_nat(text: str) -> np.datetime64:
    try:
        return np.datetime64(text, "D")
    except ValueError:
        return np.datetime64("NaT", "D")


def trends(listings: pa.Table, mixtures: np.ndarray, period: str) -> list[dict]:
    """Mean topic mixture per (period, market), over listings that have words."""
    valid = ~np.isnan(mixtures).any(axis=1)
    periods = crawl_periods(listings.column("crawled_at"), period)[valid]
    markets = np.array(listings.column("market").fill_null(UNKNOWN).to_pylist(),
                       dtype=object)[valid]
    markets[markets == ""] = UNKNOWN
    if not valid.any():
        return []
    period_names, period_code = np.unique(periods.astype(str), return_inverse=True)
    market_names, market_code = np.unique(markets.astype(str), return_inverse=True)
    names, group = np.unique(period_code * market_names.size + market_code, return_inverse=True)
    sizes = np.bincount(group, minlength=names.size)
    sums = np.zeros((names.size, mixtures.shape[1]))
    np.add.at(sums, group, mixtures[valid])
    out = []
    for name, size, total in zip(names, sizes, sums, strict=True):
        out.append({"period": str(period_names[name // market_names.size]),
                    "market": str(market_names[name % market_names.size]),
                    "listings": int(size),
                    "prevalence": [round(float(v), 4) for v in total / size]})
    return out


def documents(listings: pa.Table, mixtures: np.ndarray) -> list[dict]:
    """Each listing with its dominant topic and mixture (null where no word was left)."""
    valid = ~np.isnan(mixtures).any(axis=1)
    dominant = np.where(valid, np.nan_to_num(mixtures).argmax(axis=1), -1)
    rounded = np.round(np.nan_to_num(mixtures), 4).tolist()
    columns = {name: _text(listings, name) for name in
               ("url", "market", "vendor", "title", "crawled_at")}
    return [{
        "listing": i,
        **{name: (values[i] or None) for name, values in columns.items()},
        "topic": int(dominant[i]) if valid[i] else None,
        "mixture": rounded[i] if valid[i] else None,
    } for i in range(len(dominant))]


def summarize(model: ListingTopicModel, listings: pa.Table, mixtures: np.ndarray,
              counts: sp.csr_matrix, options: SummaryOptions,
              k_search: KSearch | None = None) -> dict:
    """The topics.json document: topics, documents, trends and how the model was chosen."""
    names = labels(model, options.n_label_words, options.relevance_lambda)
    products = representative_products(model, listings, mixtures, counts, options)
    valid = ~np.isnan(mixtures).any(axis=1)
    prevalence = np.nanmean(mixtures[valid], axis=0) if valid.any() else np.zeros(model.n_topics)
    topics = []
    for topic in range(model.n_topics):
        order = np.argsort(-model.topic_word_[topic], kind="stable")[:options.n_words]
        topics.append({
            "id": topic,
            "label": names[topic],
            "words": [[str(model.vocabulary_[w]), round(float(model.topic_word_[topic, w]), 5)]
                      for w in order],
            "products": products[topic],
            "prevalence": round(float(prevalence[topic]), 4),
            "coherence_npmi": round(float(model.coherence_[topic]), 4),
        })
    return {
        "model": {
            "k": model.n_topics,
            "seed": model.seed,
            "coherence_npmi": round(float(np.mean(model.coherence_)), 4),
            "k_search": ({str(k): round(v, 4) for k, v in k_search.scores.items()}
                         if k_search else None),
            "listings": int(mixtures.shape[0]),
            "listings_without_words": int((~valid).sum()),
            "vocabulary": int(model.vocabulary_.size),
            "period": options.period,
        },
        "topics": topics,
        "documents": documents(listings, mixtures),
        "trends": trends(listings, mixtures, options.period),
    }
