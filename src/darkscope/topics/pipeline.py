"""The two jobs behind the CLI, as library calls: fit a topics directory, score new listings."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from darkscope.errors import DarkscopeError
from darkscope.io import atomic_path
from darkscope.topics.model import KSearch, ListingTopicModel, SamplerSettings, fit_best_k
from darkscope.topics.preprocess import Preprocessing, count_with_vocabulary, listing_text
from darkscope.topics.report import render_report
from darkscope.topics.summary import SummaryOptions, labels, summarize


@dataclass(frozen=True)
class FitResult:
    model: ListingTopicModel
    summary: dict
    k_search: KSearch | None


def texts_of(listings: pa.Table) -> list[str]:
    return listing_text(listings.column("title").to_pylist(),
                        listings.column("description").to_pylist())


def with_default_market(listings: pa.Table, market: str | None) -> pa.Table:
    """Fill missing market names (a CSV export of one market has no such column)."""
    if not market:
        return listings
    column = listings.column("market").fill_null(market)
    return listings.set_column(listings.schema.get_field_index("market"), "market", column)


def fit_listings(listings: pa.Table, k: int | Sequence[int], *, seed: int = 0,
                 preprocessing: Preprocessing | None = None,
                 sampler: SamplerSettings | None = None,
                 options: SummaryOptions | None = None) -> FitResult:
    """Fit on listings with a fixed k (an int) or the most coherent k of a sequence."""
    texts = texts_of(listings)
    preprocessing = preprocessing or Preprocessing()
    if isinstance(k, int):
        model = ListingTopicModel(k, seed=seed, preprocessing=preprocessing,
                                  sampler=sampler).fit(texts)
        search = None
    else:
        model, search = fit_best_k(texts, list(k), seed=seed, preprocessing=preprocessing,
                                   sampler=sampler)
    summary = summarize(model, listings, model.doc_topic_, model.counts_,
                        options or SummaryOptions(), search)
    return FitResult(model, summary, search)


LISTINGS_FILE = "listings.parquet"


def write_topics_directory(result: FitResult, listings: pa.Table, output: str | Path,
                           overwrite: bool) -> Path:
    """Model files, the modelled listings (for updates), topics.json and report.html, all
    appearing at once (atomic directory)."""
    with atomic_path(output, overwrite) as staged:
        result.model.save(staged)
        pq.write_table(listings, staged / LISTINGS_FILE, compression="zstd")
        (staged / "topics.json").write_text(
            json.dumps(result.summary, ensure_ascii=False), encoding="utf-8")
        (staged / "report.html").write_text(render_report(result.summary), encoding="utf-8")
    return Path(output)


def update_listings(model_dir: str | Path, new_listings: pa.Table,
                    options: SummaryOptions | None = None) -> tuple[FitResult, pa.Table, int]:
    """A fitted directory's model updated with a new crawl; topics keep their ids.

    Returns the result, all listings now modelled, and how many of ``new_listings`` were added:
    listings already in the model (or repeated in the crawl) are skipped, so feeding the same
    crawl twice does not count it twice.
    """
    model = ListingTopicModel.load(model_dir)
    stored = Path(model_dir) / LISTINGS_FILE
    if not stored.is_file():
        raise DarkscopeError(f"{model_dir} has no {LISTINGS_FILE}: refit it with this version "
                             "of `darkscope topics fit` to be able to update it")
    old = pq.read_table(stored)
    if old.num_rows != model.counts_.shape[0]:
        raise DarkscopeError(f"{stored} has {old.num_rows} listings but the model was trained "
                             f"on {model.counts_.shape[0]}; the directory was altered")
    fresh = unseen_listings(new_listings.select(old.column_names).cast(old.schema), old)
    if fresh.num_rows == 0:
        raise DarkscopeError(f"all {new_listings.num_rows} listings are already in {model_dir}; "
                             "nothing to update")
    counts = count_with_vocabulary(texts_of(fresh), model.preprocessing,
                                   model.vocabulary_, model.phrases_)
    model.update_counts(counts)
    listings = pa.concat_tables([old, fresh])
    summary = summarize(model, listings, model.doc_topic_, model.counts_,
                        options or SummaryOptions())
    return FitResult(model, summary, None), listings, fresh.num_rows


def unseen_listings(new: pa.Table, known: pa.Table) -> pa.Table:
    """Rows of ``new`` that are in neither ``known`` nor earlier in ``new`` (every field equal,
    missing values equal to each other), in their original order."""
    names = new.column_names

    def keys(table: pa.Table) -> pa.Table:
        # Arrow joins never match nulls; a sentinel makes "both missing" equal.
        return pa.table({n: pc.fill_null(table.column(n).cast(pa.string()), "\x00")
                         for n in names})

    first = (keys(new).append_column("row", pa.array(np.arange(new.num_rows)))
             .group_by(names).aggregate([("row", "min")]))
    fresh = first.join(keys(known).group_by(names).aggregate([]), keys=names,
                       join_type="left anti")
    return new.take(np.sort(fresh.column("row_min").to_numpy()))


def assign_listings(listings: pa.Table, model: ListingTopicModel) -> pa.Table:
    """Each listing with its dominant topic, that topic's label and share, and the mixture."""
    counts = count_with_vocabulary(texts_of(listings), model.preprocessing,
                                   model.vocabulary_, model.phrases_)
    mixtures = model.transform_counts(counts)
    valid = ~np.isnan(mixtures).any(axis=1)
    dominant = np.nan_to_num(mixtures).argmax(axis=1)
    names = np.array(labels(model), dtype=object)
    columns: dict[str, pa.Array] = {
        name: listings.column(name) for name in ("url", "market", "vendor", "title",
                                                 "crawled_at")}
    columns["topic"] = pa.array(np.where(valid, dominant, 0), pa.int32(), mask=~valid)
    columns["topic_label"] = pa.array(names[dominant], pa.string(), mask=~valid)
    columns["share"] = pa.array(np.nan_to_num(mixtures).max(axis=1), pa.float64(), mask=~valid)
    for topic in range(model.n_topics):
        columns[f"topic_{topic}"] = pa.array(mixtures[:, topic], pa.float64(), mask=~valid)
    return pa.table(columns)

