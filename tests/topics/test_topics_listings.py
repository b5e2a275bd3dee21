import json

import pytest

from darkscope.errors import InputFormatError, UsageError
from darkscope.topics.listings import FIELDS, parse_column_map, read_listings

from .conftest import write_jsonl


def test_crawler_jsonl_with_missing_optional_fields(tmp_path):
    rows = [
        {"market": "hansa", "url": "http://h.onion/1", "title": "DDoS service",
         "description": "<b>1 hour</b> attack", "price": 0.01, "currency": "BTC",
         "crawled_at": "2017-07-21T10:00:00Z"},
        {"market": "hansa", "title": "RAT builder", "vendor": "v1"},
    ]
    table = read_listings(write_jsonl(tmp_path / "l.jsonl", rows))
    assert table.column_names == list(FIELDS)
    assert table.column("price").to_pylist() == ["0.01", None]
    assert table.column("vendor").to_pylist() == [None, "v1"]
    assert table.column("description").to_pylist() == ["<b>1 hour</b> attack", None]


def test_agora_style_csv_is_mapped_by_aliases(tmp_path):
    path = tmp_path / "agora.csv"
    path.write_text("date,vendor,product,description,price,from,to\n"
                    '2014-01-01,v,"Weed, 5g",Nice weed,0.1,USA,Worldwide\n', encoding="utf-8")
    row = read_listings(path).to_pylist()[0]
    assert row["title"] == "Weed, 5g" and row["crawled_at"] == "2014-01-01"
    assert row["ships_from"] == "USA" and row["price"] == "0.1"


def test_explicit_column_map(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"name_of_item": "Botnet", "when": "2017-01-02"}])
    table = read_listings(path, parse_column_map("title=name_of_item,crawled_at=when"))
    assert table.column("title").to_pylist() == ["Botnet"]
    assert table.column("crawled_at").to_pylist() == ["2017-01-02"]
    with pytest.raises(InputFormatError, match="'missing'"):
        read_listings(path, {"title": "missing"})
    with pytest.raises(UsageError, match="FIELD=COLUMN"):
        parse_column_map("title")
    with pytest.raises(UsageError, match="unknown field"):
        parse_column_map("headline=title")


def test_bad_json_line_is_named_with_byte_offset(tmp_path):
    good = json.dumps({"title": "ok"}) + "\n"
    path = tmp_path / "bad.jsonl"
    path.write_text(good + "{not json\n", encoding="utf-8")
    with pytest.raises(InputFormatError) as info:
        read_listings(path)
    assert info.value.offset == len(good)
    assert "line 2" in str(info.value)


def test_no_text_column_is_an_error(tmp_path):
    path = write_jsonl(tmp_path / "n.jsonl", [{"price": 1}])
    with pytest.raises(InputFormatError, match="no title or description"):
        read_listings(path)


def test_empty_file_gives_empty_table(tmp_path):
    path = tmp_path / "e.jsonl"
    path.write_text("", encoding="utf-8")
    assert read_listings(path).num_rows == 0


def test_fields_whose_type_changes_between_lines_are_read_as_text(tmp_path):
    rows = [{"title": "a", "price": 0.5}, {"title": "b", "price": "0.7 BTC"},
            {"title": "c", "price": None, "category": ["x", "y"]}]
    table = read_listings(write_jsonl(tmp_path / "mixed.jsonl", rows))
    assert table.column("price").to_pylist() == ["0.5", "0.7 BTC", None]
    assert table.column("category").to_pylist() == [None, None, '["x", "y"]']
