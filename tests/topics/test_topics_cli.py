import json
import re

import pyarrow.csv as pacsv
import pytest

from darkscope.cli import main
from darkscope.topics.synthetic import planted_corpus

from .conftest import write_jsonl


@pytest.fixture(scope="module")
def fitted_dir(tmp_path_factory, planted):
    folder = tmp_path_factory.mktemp("cli")
    listings = write_jsonl(folder / "listings.jsonl", planted.listings[:800])
    out = folder / "topics"
    assert main(["topics", "fit", str(listings), "-k", "6", "-o", str(out), "--seed", "4",
                 "--period", "week"]) == 0
    return out


def test_fit_writes_model_topics_and_report(fitted_dir):
    assert {p.name for p in fitted_dir.iterdir()} >= {"model.json", "topics.json",
                                                      "report.html"}
    summary = json.loads((fitted_dir / "topics.json").read_text())
    assert summary["model"]["k"] == 6 and len(summary["topics"]) == 6
    assert len(summary["documents"]) == 800
    assert {t["market"] for t in summary["trends"]} == {"alpha", "hansa"}
    assert summary["trends"][0]["period"].startswith("2017-")
    html = (fitted_dir / "report.html").read_text()
    assert html.count("<svg") >= 6 + 2  # word bars per topic, one trend chart per market


def test_assign_scores_new_listings(tmp_path, fitted_dir, planted):
    fresh = planted_corpus(n_documents=1000, k=6, seed=11)
    listings = write_jsonl(tmp_path / "new.jsonl",
                           [*fresh.listings[:30], {"title": "10 mg", "description": ""}])
    out = tmp_path / "assigned.jsonl"
    assert main(["topics", "assign", str(listings), "--model", str(fitted_dir),
                 "-o", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 31
    for row in rows[:30]:
        mixture = [row[f"topic_{i}"] for i in range(6)]
        assert abs(sum(mixture) - 1) < 1e-3
        assert row["topic"] == mixture.index(max(mixture)) and row["topic_label"]
    assert rows[30]["topic"] is None and rows[30]["topic_0"] is None
    csv_out = tmp_path / "assigned.csv"
    assert main(["topics", "assign", str(listings), "--model", str(fitted_dir),
                 "-o", str(csv_out)]) == 0
    assert pacsv.read_csv(csv_out).num_rows == 31


def test_k_range_is_recorded(tmp_path, planted):
    listings = write_jsonl(tmp_path / "l.jsonl", planted.listings[:600])
    out = tmp_path / "t"
    assert main(["topics", "fit", str(listings), "--k-range", "5:7", "-o", str(out),
                 "--restarts", "1"]) == 0
    summary = json.loads((out / "topics.json").read_text())
    assert set(summary["model"]["k_search"]) == {"5", "6", "7"}
    assert str(summary["model"]["k"]) in summary["model"]["k_search"]


@pytest.mark.parametrize(("rows", "args", "code", "message"), [
    ([], ["-k", "3"], 1, "no listings"),
    ([{"title": "20 mg x 60", "description": "<p>free shipping</p>"}] * 5, ["-k", "2"], 1,
     "none of the 5 listings has a word left"),
    ([{"title": "botnet ddos"}, {"title": "botnet rat"}, {"title": "ddos rat"}], ["-k", "8"], 1,
     "k=8 topics is more than the 3 listings"),
    ([{"title": "x"}], ["-k", "2", "--k-range", "2:3"], 2, "either -k or --k-range"),
    ([{"title": "x"}], ["--k-range", "5:2"], 2, "START:END"),
    ([{"price": 3}], ["-k", "2"], 1, "no title or description"),
    ([{"title": None, "description": " "}] * 3, ["-k", "2"], 1,
     "title and description are empty in every listing"),
])
def test_bad_input_exits_non_zero_with_a_clear_message(tmp_path, capsys, rows, args, code,
                                                       message):
    listings = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out"
    assert main(["topics", "fit", str(listings), *args, "-o", str(out)]) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_existing_output_needs_overwrite(tmp_path, capsys, fitted_dir):
    listings = write_jsonl(tmp_path / "in.jsonl", [{"title": "botnet"}])
    assert main(["topics", "fit", str(listings), "-k", "1", "-o", str(fitted_dir)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["topics", "assign", str(listings), "--model", str(tmp_path),
                 "-o", str(tmp_path / "a.jsonl")]) == 1
    assert "not a topic model directory" in capsys.readouterr().err


def test_help_explains_commands(capsys):
    """Every command says what it does and every option says what it is for."""
    import click

    from darkscope.topics.cli import topics

    assert main(["topics", "--help"]) == 0
    listing = capsys.readouterr().out.split("Commands:", 1)[1]
    assert set(topics.commands) == {"fit", "assign", "update"}
    for name, command in topics.commands.items():
        summary = command.get_short_help_str(limit=200)
        assert len(summary.split()) >= 4, name  # a sentence, not a stub
        assert re.search(rf"^\s+{name}\s+\S", listing, re.M), name
        assert main(["topics", name, "--help"]) == 0
        out = capsys.readouterr().out
        assert len(command.help.split()) >= 15, f"{name}: help explains little"
        for param in command.params:
            if isinstance(param, click.Option) and "--help" not in param.opts:
                assert param.help and len(param.help.split()) >= 3, (name, param.opts)
                assert param.opts[-1] in out, (name, param.opts)


def test_update_adds_a_crawl_and_keeps_topic_ids(tmp_path, fitted_dir, planted):
    later = [{**row, "crawled_at": "2017-08-01", "market": "hansa"}
             for row in planted.listings[800:1100]]
    listings = write_jsonl(tmp_path / "august.jsonl", later)
    out = tmp_path / "updated"
    assert main(["topics", "update", str(listings), "--model", str(fitted_dir),
                 "-o", str(out), "--period", "month"]) == 0
    before = json.loads((fitted_dir / "topics.json").read_text())
    after = json.loads((out / "topics.json").read_text())
    assert len(after["documents"]) == 1100
    assert {t["period"] for t in after["trends"]} == {"2017-06", "2017-08"}
    for old, new in zip(before["topics"], after["topics"], strict=True):
        old_words = {w for w, _ in old["words"]}
        assert len(old_words & {w for w, _ in new["words"]}) >= 16
    # The updated directory can itself be scored with and updated again.
    assert main(["topics", "assign", str(listings), "--model", str(out),
                 "-o", str(tmp_path / "a.parquet")]) == 0


@pytest.mark.parametrize("command", ["assign", "update"])
def test_assign_and_update_refuse_listings_without_text(tmp_path, capsys, fitted_dir, command):
    listings = write_jsonl(tmp_path / "in.jsonl", [{"name": None, "body": ""}] * 4)
    out = tmp_path / ("out.jsonl" if command == "assign" else "out")
    assert main(["topics", command, str(listings), "--model", str(fitted_dir),
                 "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "title from 'name', description from 'body'" in err and "--columns" in err
    assert not out.exists()


def test_update_with_the_same_crawl_adds_only_what_is_new(tmp_path, capsys, fitted_dir,
                                                          planted):
    again = write_jsonl(tmp_path / "again.jsonl", planted.listings[:800])
    assert main(["topics", "update", str(again), "--model", str(fitted_dir),
                 "-o", str(tmp_path / "same")]) == 1
    assert "all 800 listings are already in" in capsys.readouterr().err
    assert not (tmp_path / "same").exists()
    mixed = write_jsonl(tmp_path / "mixed.jsonl",
                        planted.listings[790:810] + planted.listings[805:810])
    out = tmp_path / "mixed"
    assert main(["topics", "update", str(mixed), "--model", str(fitted_dir),
                 "-o", str(out)]) == 0
    assert "10 new listings (15 already known, skipped), 810 in all" in capsys.readouterr().err
    assert len(json.loads((out / "topics.json").read_text())["documents"]) == 810
