"""The summaries pages read (rollups.py) against the raw tables they summarise, and their
upkeep as files arrive, change and go."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from darkscope.web import queries
from darkscope.web.data import DataSource, Host, ipv4_text

BUILD_S = 120


@pytest.fixture(scope="module")
def summarised(outputs, tmp_path_factory):
    source = DataSource(outputs.data, tmp_path_factory.mktemp("cache") / "c.duckdb")
    assert source.rollups.wait(BUILD_S), "the summaries were not built in time"
    source.refresh()
    assert not source.rollups.pending("packets")
    yield source
    source.close()


def _raw(source: DataSource, sql: str, params: list | None = None) -> list[dict]:
    return source.query(sql, params)


def test_overview_from_summaries_equals_the_raw_tables(summarised):
    span = summarised.time_range("all", None, None)
    found = queries.overview(summarised, span)
    hours = span.hours()
    hourly = _raw(summarised, "SELECT to_timestamp((epoch_ns(window_start) // 3600000000000) "
                  "* 3600) AS hour, verdict, sum(packets)::BIGINT AS packets, count(DISTINCT "
                  "src)::BIGINT AS hosts FROM verdicts GROUP BY ALL ORDER BY 1, 2")
    assert found["hourly"] == queries._clean(hourly)
    assert sum(t["windows"] for t in found["totals"].values()) == _raw(
        summarised, "SELECT count(*) AS n FROM verdicts")[0]["n"]
    ports = _raw(summarised,
                 "SELECT proto, dport AS port, count(*) AS packets, count(DISTINCT src) AS "
                 "hosts FROM packets WHERE dport IS NOT NULL AND ts >= to_timestamp(? * 3600) "
                 "AND ts < to_timestamp(? * 3600) GROUP BY ALL ORDER BY packets DESC, proto, "
                 "port LIMIT 10", hours)
    assert [(p["proto"], p["port"], p["packets"]) for p in found["top_ports"]] == [
        (p["proto"], p["port"], p["packets"]) for p in ports]
    for mine, exact in zip(found["top_ports"], ports, strict=True):
        assert mine["hosts_estimated"]
        # HyperLogLog at lg k 14: 0.8 % standard error; small counts are near exact
        assert abs(mine["hosts"] - exact["hosts"]) <= max(2, 0.03 * exact["hosts"]), mine
    tools = _raw(summarised, "SELECT family, count(DISTINCT src) AS n FROM hosts WHERE "
                 "period_start >= to_timestamp(? * 3600) AND period_start < "
                 "to_timestamp(? * 3600) GROUP BY ALL", hours)
    assert {r["family"] for r in tools} & set(queries.TOOLS)
    for row in tools:
        if row["family"] in queries.TOOLS:
            assert abs(found["tools"][row["family"]] - row["n"]) <= max(2, 0.03 * row["n"])


def test_ip_pages_from_the_source_ordered_copy_equal_the_raw_packets(summarised):
    sources = [r["src"] for r in _raw(
        summarised, "SELECT src, count(*) AS n FROM packets GROUP BY src ORDER BY n DESC, src "
        "LIMIT 3")]
    sources.append(_raw(summarised, "SELECT min(src) AS s FROM packets")[0]["s"])
    for src in sources:
        context = queries.ip_context(summarised, Host.parse(ipv4_text(src)))
        raw = _raw(summarised, "SELECT count(*) AS n, min(ts) AS a, max(ts) AS b FROM packets "
                   "WHERE src = ?", [src])[0]
        assert context["packets"] == raw["n"] > 0
        assert context["first_seen"] == queries._iso(raw["a"])
        ports = _raw(summarised, "SELECT proto, dport AS port, count(*) AS packets FROM "
                     "packets WHERE src = ? AND dport IS NOT NULL GROUP BY ALL ORDER BY "
                     "packets DESC, port LIMIT 10", [src])
        assert context["ports"] == ports
        first = _raw(summarised, "SELECT ts, dport FROM packets WHERE src = ? ORDER BY ts, "
                     "dport LIMIT 5", [src])
        assert [(p["ts"], p["dport"]) for p in context["sample"][:5]] == [
            (queries._iso(p["ts"]), p["dport"]) for p in first]


def _packet_totals(source: DataSource) -> tuple[int, int]:
    summary = source.query("SELECT coalesce(sum(packets), 0)::BIGINT AS n FROM port_hours")
    raw = source.query("SELECT count(*) AS n FROM packets WHERE dport IS NOT NULL")
    return summary[0]["n"], raw[0]["n"]


def test_files_that_arrive_change_and_go_are_followed(outputs, tmp_path):
    packets = sorted((outputs.data / "monitor" / "packets").rglob("*.parquet"))
    assert len(packets) >= 3
    data = tmp_path / "data"
    data.mkdir()
    for i, path in enumerate(packets[:2]):
        shutil.copy(path, data / f"part-{i}.parquet")
    source = DataSource(data, tmp_path / "c.duckdb")
    try:
        assert source.rollups.wait(BUILD_S)
        source.refresh()
        built, raw = _packet_totals(source)
        assert built == raw > 0
        # a new part: answered at once from the raw file, then from its summary
        shutil.copy(packets[2], data / "part-2.parquet")
        source.refresh(force=True)
        assert source.rollups.pending("packets") or source.rollups.wait(0)
        assert _packet_totals(source)[0] == _packet_totals(source)[1] > raw
        assert source.rollups.wait(BUILD_S)
        source.refresh()
        assert not source.rollups.pending("packets")
        three = _packet_totals(source)
        assert three[0] == three[1]
        # a part replaced by another's contents, and a part removed
        shutil.copy(packets[0], data / "part-2.parquet")
        (data / "part-1.parquet").unlink()
        source.refresh(force=True)
        assert source.rollups.wait(BUILD_S)
        source.refresh()
        after = _packet_totals(source)
        assert after[0] == after[1] < three[0]
        files = source.query("SELECT count(*) AS n FROM cache.files WHERE kind = 'packets'")
        assert files[0]["n"] == 2  # the old versions' rows were dropped
    finally:
        source.close()
    # kept on disk: a restart finds every file built
    again = DataSource(data, tmp_path / "c.duckdb")
    try:
        assert not again.rollups.pending("packets")
        assert _packet_totals(again)[0] == after[0]
    finally:
        again.close()


def test_a_cache_another_process_holds_falls_back_to_memory(outputs, tmp_path):
    first = DataSource(outputs.data / "monitor" / "verdicts", tmp_path / "c.duckdb")
    try:
        assert first.rollups.path == tmp_path / "c.duckdb"
        import subprocess
        import sys
        code = ("from pathlib import Path; from darkscope.web.data import DataSource; "
                f"s = DataSource(Path({str(outputs.data / 'monitor' / 'verdicts')!r}), "
                f"Path({str(tmp_path / 'c.duckdb')!r})); print(s.rollups.path); "
                "s.rollups.wait(60); s.refresh(); "
                "print(s.query('SELECT sum(windows) AS n FROM verdict_hours')[0]['n'])")
        answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True)
        path, windows = answer.stdout.split()
        assert path == "None"
        assert int(windows) == first.query("SELECT count(*) AS n FROM verdicts")[0]["n"]
    finally:
        first.close()


def test_summary_paths_are_quoted(tmp_path, outputs):
    """A directory name with a quote in it is a path, not SQL."""
    data = tmp_path / "it's here"
    shutil.copytree(outputs.data / "monitor" / "verdicts", data)
    source = DataSource(data, tmp_path / "o'c.duckdb")
    try:
        assert source.rollups.wait(BUILD_S)
        source.refresh()
        assert source.query("SELECT sum(windows) AS n FROM verdict_hours")[0]["n"] > 0
    finally:
        source.close()


def test_cache_path_default_is_beside_the_store(tmp_path):
    from darkscope.web.app import Settings
    settings = Settings(tmp_path, tmp_path / "darkscope.db")
    assert settings.summaries == Path(tmp_path / "darkscope.db.cache.duckdb")


def test_the_same_question_asked_at_once_is_computed_once(outputs, tmp_path):
    import threading
    import time

    source = DataSource(outputs.data / "monitor" / "verdicts", tmp_path / "c.duckdb")
    calls: list[int] = []

    def slow(_cursor):
        calls.append(1)
        time.sleep(0.3)
        if len(calls) == 1:
            raise RuntimeError("the first computation fails")
        return object()

    answers: list[object] = []
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            answers.append(source._cached(("question",), slow))
        except RuntimeError as exc:
            errors.append(exc)

    try:
        threads = [threading.Thread(target=ask) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # one asker saw the failure; one waiter then computed it for all the others
        assert len(errors) == 1 and len(calls) == 2
        assert len(answers) == 5 and len({id(a) for a in answers}) == 1
    finally:
        source.close()
