"""Listing records: the schema the topic analyzer reads, validation, output, and changes."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa

from darkscope.darkweb.prices import CURRENCIES, parse_price
from darkscope.io import write_table

SCHEMA = pa.schema([
    ("market", pa.string()), ("url", pa.string()), ("title", pa.string()),
    ("description", pa.string()), ("price", pa.float64()), ("currency", pa.string()),
    ("vendor", pa.string()), ("category", pa.string()), ("ships_from", pa.string()),
    ("ships_to", pa.string()), ("crawled_at", pa.string()), ("page_sha256", pa.string()),
])
FIELDS = tuple(SCHEMA.names)
COMPARED = ("title", "description", "price", "currency", "vendor", "category", "ships_from",
            "ships_to")
MAX_TEXT = 100_000


def _text(raw: dict[str, Any], name: str) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"field {name}: expected text, got {type(value).__name__}")
    value = value.strip()
    return value[:MAX_TEXT] or None


def make_listing(raw: dict[str, Any], market: str, crawled_at: str, page_sha256: str,
                 ) -> dict[str, Any]:
    """A validated listing from raw field values; ``ValueError`` names the offending field."""
    title = _text(raw, "title")
    if not title:
        raise ValueError("field title: missing or empty")
    url = _text(raw, "url")
    if not url or not url.startswith(("http://", "https://")):
        raise ValueError(f"field url: not an http(s) URL: {url!r}")
    price_value = raw.get("price")
    if isinstance(price_value, (int, float)):
        price, currency = float(price_value), _text(raw, "currency")
    else:
        price, currency = parse_price(_text(raw, "price"))
        if raw.get("currency") is not None:
            currency = _text(raw, "currency")
    if price is not None and (not math.isfinite(price) or price < 0):
        raise ValueError(f"field price: not a non-negative amount: {price!r}")
    if currency is not None and currency not in CURRENCIES:
        raise ValueError(f"field currency: unknown currency {currency!r}")
    if (price is None) != (currency is None):
        raise ValueError(f"field price: amount and currency must come together: "
                         f"{raw.get('price')!r}")
    return {
        "market": market, "url": url, "title": title, "description": _text(raw, "description"),
        "price": price, "currency": currency, "vendor": _text(raw, "vendor"),
        "category": _text(raw, "category"), "ships_from": _text(raw, "ships_from"),
        "ships_to": _text(raw, "ships_to"), "crawled_at": crawled_at, "page_sha256": page_sha256,
    }


def to_table(listings: Iterable[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(list(listings), schema=SCHEMA)


def write_listings(listings: Iterable[dict[str, Any]], path: str | Path,
                   fmt: str | None = None, overwrite: bool = True) -> Path:
    """JSON Lines or Parquet (from the suffix or ``fmt``), written atomically."""
    return write_table(to_table(listings), path, fmt, overwrite=overwrite)


CHANGES_SCHEMA = pa.schema([
    ("change", pa.string()), ("url", pa.string()), ("fields", pa.list_(pa.string())),
    ("listing", pa.struct(list(SCHEMA))),
    ("before", pa.struct([SCHEMA.field(name) for name in COMPARED])),
])
PARSE_ERRORS_SCHEMA = pa.schema([("url", pa.string()), ("error", pa.string())])


def write_rows(rows: Iterable[dict[str, Any]], schema: pa.Schema, path: str | Path) -> Path:
    """Rows (changes, parse errors) as JSON Lines, written atomically."""
    return write_table(pa.Table.from_pylist(list(rows), schema=schema), path, "jsonl")


def changes(previous: Iterable[dict[str, Any]], current: Iterable[dict[str, Any]],
            checked: Callable[[str], bool] | None = None) -> list[dict[str, Any]]:
    """New, changed and removed listings between two crawls, keyed by listing URL.

    A listing missing from ``current`` is ``removed`` only if ``checked(url)`` says the
    second crawl looked for it; otherwise it is ``not re-crawled``.
    """
    before = {row["url"]: row for row in previous}
    after = {row["url"]: row for row in current}
    out: list[dict[str, Any]] = []
    for url, row in after.items():
        old = before.get(url)
        if old is None:
            out.append({"change": "new", "url": url, "fields": [], "listing": row})
        else:
            differing = [f for f in COMPARED if old.get(f) != row.get(f)]
            if differing:
                out.append({"change": "changed", "url": url, "fields": differing,
                            "listing": row, "before": {f: old.get(f) for f in differing}})
    out.extend({"change": "removed" if checked is None or checked(url) else "not re-crawled",
                "url": url, "fields": [], "listing": row}
               for url, row in before.items() if url not in after)
    return out
