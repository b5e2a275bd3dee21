"""``darkscope topics``: LDA topics of dark web market listings (fit, assign, update)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from darkscope.clikit import common, format_option, output_option, overwrite_option, seed_option
from darkscope.errors import DarkscopeError, UsageError
from darkscope.io import check_output
from darkscope.topics.listings import parse_column_map, read_listings
from darkscope.topics.preprocess import Preprocessing
from darkscope.topics.summary import PERIODS, SummaryOptions

_COLUMNS_HELP = ("Map fields to the input's columns, e.g. 'title=product,crawled_at=date'. "
                 "Fields: market, url, title, description, price, currency, vendor, category, "
                 "ships_from, ships_to, crawled_at, page_sha256. Common other names (product, "
                 "date, from, to) are recognised without it.")
F = TypeVar("F", bound=Callable[..., Any])


def _input_options(func: F) -> F:
    """``--columns`` and ``--market``: how an input's listings are read (every command)."""
    func = click.option("--market", default=None,
                        help="Market name for listings that have none.")(func)
    return click.option("--columns", default=None, help=_COLUMNS_HELP)(func)


def _summary_options(func: F) -> F:
    """``--period``, ``--products``, ``--words``: what topics.json and the report show."""
    func = click.option("--words", type=int, default=20, show_default=True,
                        help="Top words per topic.")(func)
    func = click.option("--products", type=int, default=10, show_default=True,
                        help="Representative products per topic.")(func)
    return click.option("--period", type=click.Choice(PERIODS), default="day",
                        show_default=True, help="Crawl period for trends.")(func)


def _listings(path: str, columns: str | None, market: str | None):
    """The listings of ``path`` (columns mapped, default market set); an error if none."""
    from darkscope.topics.pipeline import with_default_market

    table = with_default_market(read_listings(path, parse_column_map(columns)), market)
    if table.num_rows == 0:
        raise DarkscopeError(f"{path}: no listings (the file is empty)")
    return table


def parse_k_range(text: str) -> list[int]:
    """``"3:15"`` -> 3..15 inclusive; ``"3:15:2"`` steps by 2."""
    parts = text.split(":")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        raise UsageError(f"--k-range {text!r} is not START:END[:STEP] with integers") from None
    if len(numbers) not in (2, 3) or numbers[0] < 1 or numbers[1] < numbers[0] or (
            len(numbers) == 3 and numbers[2] < 1):
        raise UsageError(f"--k-range {text!r} must be START:END[:STEP] with 1 <= START <= END")
    return list(range(numbers[0], numbers[1] + 1, numbers[2] if len(numbers) == 3 else 1))


@click.group(name="topics")
def topics() -> None:
    """Topic analysis of market listings with LDA.

    `fit` learns topics from a crawl (JSON Lines or CSV with title and description) and writes a
    directory with the model, topics.json and a self-contained report.html; `assign` scores new
    listings with a fitted model; `update` adds a new crawl to a fitted model, keeping topic ids.
    """


@topics.command()
@click.argument("listings", type=click.Path(dir_okay=False))
@click.option("-k", "--topics", "k", type=int, default=None,
              help="Number of topics (default: chosen by coherence over --k-range).")
@click.option("--k-range", default=None,
              help="Try k = START..END[:STEP] and keep the most coherent (default 3:15).")
@output_option(help="Output directory (model files, topics.json, report.html).")
@seed_option
@overwrite_option
@_input_options
@click.option("--min-df", type=int, default=2, show_default=True,
              help="Drop words in fewer listings than this.")
@click.option("--max-df", type=float, default=0.5, show_default=True,
              help="Drop words in more than this fraction of listings.")
@click.option("--phrases/--no-phrases", default=False, show_default=True,
              help="Join frequent word pairs into phrases (credit_card).")
@click.option("--stop-words", type=click.Path(dir_okay=False, exists=True), default=None,
              help="File of extra stop words, one per line.")
@click.option("--iterations", type=int, default=60, show_default=True,
              help="Gibbs sampling sweeps.")
@click.option("--init", type=click.Choice(["nmf", "random"]), default="nmf", show_default=True,
              help="Start the sampler nudged towards NMF topics (avoids merged topics) or not.")
@click.option("--restarts", type=int, default=1, show_default=True,
              help="Chains tried for 25 sweeps each; the most likely one is trained on.")
@_summary_options
@common
def fit(listings: str, k: int | None, k_range: str | None, output: str, seed: int,
        overwrite: bool, columns: str | None, market: str | None, min_df: int, max_df: float,
        phrases: bool, stop_words: str | None, iterations: int, init: str, restarts: int,
        period: str,
        products: int, words: int) -> None:
    """Fit LDA topics on LISTINGS and write the topics directory.

    Listing text (title and description) is stripped of HTML, tokenised keeping security terms
    whole (0day, cve-2017-0144, ddos), and cleaned of stop words, market boilerplate, numbers,
    quantities and version numbers. Output: model files (for `assign`), topics.json (per topic
    words, label, representative products; per listing mixture; trends per crawl period and
    market) and report.html. Same --seed, same result.
    """
    from darkscope.topics.model import SamplerSettings
    from darkscope.topics.pipeline import fit_listings, write_topics_directory

    if k is not None and k_range is not None:
        raise UsageError("give either -k or --k-range, not both")
    if iterations < 1 or restarts < 1:
        raise UsageError("--iterations and --restarts must be at least 1")
    if not 0 < max_df <= 1:
        raise UsageError("--max-df must be a fraction in (0, 1]")
    check_output(output, overwrite)
    extra = ()
    if stop_words:
        extra = tuple(w.strip() for w in Path(stop_words).read_text(encoding="utf-8").split())
    preprocessing = Preprocessing(min_df=min_df, max_df=max_df, phrases=phrases,
                                  extra_stop_words=extra)
    sampler = SamplerSettings(iterations=iterations, init=init, restarts=restarts,
                              burn_in=min(25, iterations))
    table = _listings(listings, columns, market)
    result = fit_listings(table, k if k is not None else parse_k_range(k_range or "3:15"),
                          seed=seed, preprocessing=preprocessing, sampler=sampler,
                          options=SummaryOptions(n_words=words, n_products=products,
                                                 period=period))
    write_topics_directory(result, table, output, overwrite)
    info = result.summary["model"]
    click.echo(f"{info['listings']} listings, k={info['k']}, mean NPMI "
               f"{info['coherence_npmi']:.3f} -> {output}", err=True)


@topics.command()
@click.argument("listings", type=click.Path(dir_okay=False))
@click.option("--model", "model_dir", type=click.Path(file_okay=False), required=True,
              help="Topics directory written by `darkscope topics fit` (or `update`).")
@output_option(help="Output directory for the updated model, topics.json and report.html.")
@overwrite_option
@_input_options
@_summary_options
@common
def update(listings: str, model_dir: str, output: str, overwrite: bool, columns: str | None,
           market: str | None, period: str, products: int, words: int) -> None:
    """Add a new crawl (LISTINGS) to a fitted topics directory without starting over.

    The model is retrained on old and new listings starting from its current topics, so topic
    ids stay the same and trends continue across crawls; the vocabulary stays as fitted. Writes
    a complete topics directory (model, topics.json, report.html) over all listings.
    """
    from darkscope.topics.pipeline import (
        update_listings,
        write_topics_directory,
    )

    check_output(output, overwrite)
    table = _listings(listings, columns, market)
    result, combined, added = update_listings(model_dir, table, SummaryOptions(
        n_words=words, n_products=products, period=period))
    write_topics_directory(result, combined, output, overwrite)
    known = table.num_rows - added
    click.echo(f"{added} new listings{f' ({known} already known, skipped)' if known else ''}, "
               f"{combined.num_rows} in all, k={result.model.n_topics} -> {output}", err=True)


@topics.command()
@click.argument("listings", type=click.Path(dir_okay=False))
@click.option("--model", "model_dir", type=click.Path(file_okay=False), required=True,
              help="Topics directory written by `darkscope topics fit`.")
@output_option(help="Output table (.jsonl, .csv or .parquet).")
@format_option
@overwrite_option
@_input_options
@common
def assign(listings: str, model_dir: str, output: str, fmt: str | None, overwrite: bool,
           columns: str | None, market: str | None) -> None:
    """Score LISTINGS with a fitted model: dominant topic, its label and share, and the full
    mixture (topic_0 ... topic_k-1) per listing; empty where no known word is left.
    """
    from darkscope.io import write_table
    from darkscope.topics.model import ListingTopicModel
    from darkscope.topics.pipeline import assign_listings

    check_output(output, overwrite)
    model = ListingTopicModel.load(model_dir)
    table = _listings(listings, columns, market)
    assigned = assign_listings(table, model)
    write_table(assigned, output, fmt, overwrite=overwrite)
    scored = assigned.column("topic").null_count
    click.echo(f"{assigned.num_rows} listings scored ({scored} without known words) "
               f"-> {output}", err=True)
