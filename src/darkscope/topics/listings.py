"""Read market listings from JSON Lines or CSV into one Arrow table of text columns.

The crawler writes JSON Lines with ``market, url, title, description, price, currency, vendor,
category, ships_from, ships_to, crawled_at, page_sha256``; other sources (the Agora scrape's CSV
with ``product``/``date``) differ only in column names, so a column mapping turns any of them into
the same table. Only ``title`` or ``description`` is required; missing optional fields become
nulls so every later step can rely on the columns existing.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson

from darkscope.errors import InputFormatError, UsageError

FIELDS: tuple[str, ...] = (
    "market", "url", "title", "description", "price", "currency", "vendor", "category",
    "ships_from", "ships_to", "crawled_at", "page_sha256",
)
TEXT_FIELDS: tuple[str, ...] = ("title", "description")

# Column names used by other listing sources, tried when the canonical name is absent.
ALIASES: Mapping[str, tuple[str, ...]] = {
    "title": ("product", "name", "item", "listing"),
    "description": ("desc", "body", "text"),
    "crawled_at": ("date", "scraped_at", "timestamp"),
    "ships_from": ("from", "origin"),
    "ships_to": ("to", "destination"),
    "market": ("marketplace", "site"),
    "url": ("link", "href"),
}


def parse_column_map(spec: str | None) -> dict[str, str]:
    """``"title=product,crawled_at=date"`` -> ``{"title": "product", "crawled_at": "date"}``."""
    if not spec:
        return {}
    mapping: dict[str, str] = {}
    for part in spec.split(","):
        field, sep, column = part.partition("=")
        field, column = field.strip(), column.strip()
        if not sep or not field or not column:
            raise UsageError(f"column mapping {part!r} is not FIELD=COLUMN (in {spec!r})")
        if field not in FIELDS:
            raise UsageError(f"column mapping names unknown field {field!r}; "
                             f"fields are {', '.join(FIELDS)}")
        mapping[field] = column
    return mapping


def read_listings(path: str | Path, columns: Mapping[str, str] | None = None) -> pa.Table:
    """Listings as a table with every field of :data:`FIELDS` as a (nullable) string column.

    The format comes from the suffix (``.csv`` is CSV, anything else JSON Lines). ``columns``
    maps a field to the input's column name; unmapped fields fall back to the field's own name,
    then to :data:`ALIASES`.
    """
    source = Path(path)
    if not source.is_file():
        raise UsageError(f"listings file {source} does not exist")
    raw = _read_csv(source) if source.suffix.lower() == ".csv" else _read_jsonl(source)
    return _normalise(raw, source, dict(columns or {}))


def _read_csv(path: Path) -> pa.Table:
    if path.stat().st_size == 0:
        return pa.table({})
    # Every column as text: prices like "0.07" or dates stay exactly as written.
    try:
        with open(path, newline="", encoding="utf-8") as stream:
            header = next(csv.reader(stream), [])
    except UnicodeDecodeError as exc:
        raise InputFormatError(path, f"CSV header is not UTF-8: {exc}", exc.start) from None
    try:
        return pacsv.read_csv(
            path,
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=True),
        )
    except pa.ArrowInvalid as exc:
        raise InputFormatError(path, f"not a readable CSV: {exc}") from None


def _read_jsonl(path: Path) -> pa.Table:
    if path.stat().st_size == 0:
        return pa.table({})
    try:
        table = pajson.read_json(path)
        dated = [f.name for f in table.schema if pa.types.is_timestamp(f.type)]
        if dated:
            # Arrow turns ISO strings into timestamps; read them again as the text they were.
            table = pajson.read_json(path, parse_options=pajson.ParseOptions(
                explicit_schema=pa.schema([(name, pa.string()) for name in dated]),
                unexpected_field_behavior="infer"))
    except pa.ArrowInvalid:
        # Arrow refuses bad JSON and also a field whose type changes between lines (a price as
        # a number here, as text there). Parse line by line: name the bad line, or read it all.
        return _read_jsonl_slowly(path)
    return pa.table({name: _as_text(col) for name, col in zip(
        table.column_names, table.columns, strict=True)})


def _read_jsonl_slowly(path: Path) -> pa.Table:
    """Every line parsed with :mod:`json`; values become text; the first bad line is named."""
    records: list[dict] = []
    offset = 0
    with open(path, "rb") as stream:
        for number, line in enumerate(stream, start=1):
            if line.strip():
                try:
                    record = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    raise InputFormatError(path, f"line {number} is not JSON: {exc}",
                                           offset) from None
                if not isinstance(record, dict):
                    raise InputFormatError(
                        path, f"line {number} is a JSON {type(record).__name__}, "
                        "expected an object (one listing per line)", offset)
                records.append(record)
            offset += len(line)
    names = list(dict.fromkeys(name for record in records for name in record))
    return pa.table({name: pa.array([_text_value(r.get(name)) for r in records], pa.string())
                     for name in names})


def _text_value(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def _as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column
    if pa.types.is_null(column.type):
        return column.cast(pa.string())
    try:
        return column.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # Nested values (lists, objects): keep them readable as JSON text.
        return pa.array([None if v is None else json.dumps(v) for v in column.to_pylist()],
                        pa.string())


def _normalise(raw: pa.Table, path: Path, mapping: dict[str, str]) -> pa.Table:
    present = set(raw.column_names)
    for field, column in mapping.items():
        if column not in present:
            raise InputFormatError(path, f"column {column!r} (mapped to {field}) is not in the "
                                   f"input; its columns are {', '.join(sorted(present)) or 'none'}")
    resolved: dict[str, str | None] = {}
    for field in FIELDS:
        if field in mapping:
            resolved[field] = mapping[field]
        elif field in present:
            resolved[field] = field
        else:
            resolved[field] = next((a for a in ALIASES.get(field, ()) if a in present), None)
    if raw.num_rows and not any(resolved[f] for f in TEXT_FIELDS):
        raise InputFormatError(
            path, f"no title or description column (columns: {', '.join(sorted(present))}); "
            "name them with --columns title=COLUMN,description=COLUMN")
    arrays = []
    for field in FIELDS:
        column = resolved[field]
        arrays.append(_as_text(raw.column(column)) if column
                      else pa.nulls(raw.num_rows, pa.string()))
    table = pa.table(arrays, names=list(FIELDS))
    if raw.num_rows and not any(_has_text(table.column(f)) for f in TEXT_FIELDS):
        used = ", ".join(f"{f} from {resolved[f]!r}" for f in TEXT_FIELDS if resolved[f])
        raise InputFormatError(
            path, f"title and description are empty in every listing ({used}; columns: "
            f"{', '.join(sorted(present))}); name the text columns with "
            "--columns title=COLUMN,description=COLUMN")
    return table


def _has_text(column: pa.ChunkedArray) -> bool:
    """Whether any value holds more than whitespace."""
    stripped = pc.utf8_trim_whitespace(column.fill_null(""))
    return bool(pc.any(pc.not_equal(stripped, "")).as_py())
