"""The scanner rules page and its API against the rules tables they were computed from."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from darkscope.patterns.mining import rule_text
from darkscope.web.charts import _broken_axis, contiguous_runs

from .conftest import login


def _tables(root, columns: set[str]) -> list:
    found = []
    for path in root.rglob("*.parquet"):
        try:
            if columns <= set(pq.read_schema(path).names):
                found.append(pq.read_table(path))
        except (OSError, pa.ArrowInvalid):  # the fixture's foreign notes.parquet
            continue
    return found


def _rules_table(served):
    tables = _tables(served.data, {"antecedent", "support_hosts", "period_start"})
    rows = [r for t in tables for r in t.to_pylist()]
    assert rows, "the fixture mined no rules"
    return rows


def test_rules_timeline_follows_each_rule_through_its_periods(served) -> None:
    rows = _rules_table(served)
    with httpx.Client(base_url=served.url, timeout=60) as client:
        login(client, "victor")
        found = client.get("/api/v1/rules").json()
        periods = sorted({r["period_start"] for r in rows})
        assert len(found["periods"]) == len(periods) > 1
        by_rule: dict[str, dict] = {}
        for r in rows:
            by_rule.setdefault(rule_text(r["antecedent"], r["consequent"]), {})[
                r["period_start"]] = max(r["support_hosts"], by_rule.get(rule_text(
                    r["antecedent"], r["consequent"]), {}).get(r["period_start"], 0))
        assert {r["rule"] for r in found["rules"]} == set(by_rule)
        for rule in found["rules"]:
            want = [by_rule[rule["rule"]].get(p, 0) for p in periods]
            assert rule["daily_hosts"] == want, rule["rule"]
            assert rule["peak_hosts"] == max(want)
        # the Mirai share shown is the rules table's, in the rule's peak period
        shares: dict[tuple[str, object], list] = {}
        for r in rows:
            shares.setdefault((rule_text(r["antecedent"], r["consequent"]),
                               r["period_start"]), []).append(r["mirai_share"])
        checked = 0
        for rule in found["rules"]:
            want = by_rule[rule["rule"]]
            peak = max(periods, key=lambda p, w=want: (w.get(p, 0), -periods.index(p)))
            (share, *more) = shares[(rule["rule"], peak)]
            if not more:
                assert rule["mirai_share_at_peak"] == pytest.approx(share), rule["rule"]
                checked += 1
        assert checked > 10
        assert any(r["mirai_share_at_peak"] and r["mirai_share_at_peak"] > 0.5
                   for r in found["rules"])
        peaks = [r["peak_hosts"] for r in found["rules"]]
        assert peaks == sorted(peaks, reverse=True)
        for family, shown in found["panels"].items():
            assert all(r["family"] == family for r in shown) and len(shown) <= 6
        # a filter keeps the rules whose text contains it, and nothing else
        some = found["rules"][0]["rule"].strip("{}").split(",")[0].split(" ")[0]
        narrowed = client.get("/api/v1/rules", params={"match": some}).json()["rules"]
        assert narrowed and all(some in r["rule"] for r in narrowed)
        assert len(narrowed) == sum(some in r for r in by_rule)
        page = client.get("/rules")
        assert page.status_code == 200
        drawn = sum(len(v) for v in found["panels"].values())
        assert page.text.count('<g class="rule">') == drawn
        seconds = [datetime.fromisoformat(p.replace("Z", "+00:00")).timestamp()
                   for p in found["periods"]]
        runs = contiguous_runs(seconds)
        assert page.text.count("<polyline") == drawn * sum(len(r) > 1 for r in runs)


def test_rule_lines_break_where_no_periods_were_mined() -> None:
    hour = 3600.0
    hourly_then_a_day_later = [0, hour, 2 * hour, 3 * hour, 27 * hour, 28 * hour, 60 * hour]
    assert contiguous_runs(hourly_then_a_day_later) == [[0, 1, 2, 3], [4, 5], [6]]
    assert contiguous_runs([0, hour, 2 * hour]) == [[0, 1, 2]]
    assert contiguous_runs([0.0]) == [[0]]


def test_a_rule_page_lists_its_periods_and_its_own_hosts(served) -> None:
    rows = _rules_table(served)
    with httpx.Client(base_url=served.url, timeout=60) as client:
        login(client, "victor")
        chosen = client.get("/api/v1/rules").json()["rules"][0]["rule"]
        answer = client.get("/api/v1/rules/rule", params={"text": chosen})
        assert answer.status_code == 200
        found = answer.json()
        mine = sorted((x for x in rows if rule_text(x["antecedent"], x["consequent"]) == chosen),
                      key=lambda x: x["period_start"])
        assert [p["support_hosts"] for p in found["periods"]] == [
            x["support_hosts"] for x in mine]
        # the hosts are the rule's support sets, each with the periods it carried the rule in
        periods_of: dict[int, int] = {}
        for x in mine:
            for src in x["support_src"]:
                periods_of[src] = periods_of.get(src, 0) + 1
        assert found["hosts_source"] == "support" and found["hosts"]
        shown = {h["src"]: h["periods"] for h in found["hosts"]}
        assert all(periods_of[src] == n for src, n in shown.items())
        assert len(shown) == min(len(periods_of), 200)
        counts = [h["periods"] for h in found["hosts"]]
        assert counts == sorted(counts, reverse=True)
        page = client.get(f"/rules/rule?text={quote(chosen, safe='')}")
        assert page.status_code == 200 and "Per period" in page.text
        assert "Hosts carrying this rule" in page.text
        first = found["hosts"][0]["ip"]
        assert f'href="/ip/{first}"' in page.text
        assert client.get("/api/v1/rules/rule", params={"text": "{no=such} -> {rule=1}"}
                          ).status_code == 404


def test_rules_tables_without_support_sets_fall_back_to_family_hosts(served,
                                                                      tmp_path) -> None:
    """Tables mined before ``support_src`` existed: the page lists the hosts fingerprinted
    as the rule's family in its periods, and says so."""
    from darkscope.web.data import DataSource
    from darkscope.web.queries import rule

    rows = [r for r in _rules_table(served) if r.get("family") not in (None, "unknown")]
    assert rows, "the fixture's rules include one of a known family"
    tables = _tables(served.data, {"antecedent", "consequent", "support_hosts"})
    old = pa.concat_tables([t.drop_columns([c for c in ("support_src", "date", "hour")
                                            if c in t.column_names]) for t in tables],
                           promote_options="default")
    pq.write_table(old, tmp_path / "old-rules.parquet")
    hosts = _tables(served.data, {"match_share", "family", "src"})
    for i, table in enumerate(hosts):
        pq.write_table(table.drop_columns([c for c in ("date", "hour")
                                           if c in table.column_names]),
                       tmp_path / f"hosts-{i}.parquet")
    source = DataSource(tmp_path, tmp_path / "cache.duckdb")
    try:
        text = rule_text(rows[0]["antecedent"], rows[0]["consequent"])
        found = rule(source, text)
    finally:
        source.close()
    family = found["family"]
    family_hosts = {r["src"] for t in hosts for r in t.to_pylist() if r["family"] == family}
    assert found["hosts_source"] == "family" and found["hosts"]
    assert {h["src"] for h in found["hosts"]} <= family_hosts


def test_gaps_are_drawn_as_breaks_of_fixed_width() -> None:
    hour = 3600.0
    seconds = [0, hour, 2 * hour, 200 * 24 * hour, 200 * 24 * hour + 2 * hour]
    runs = contiguous_runs(seconds)
    xs = _broken_axis(seconds, runs, 600.0, gap=40.0)
    assert xs[0] == 0 and xs[-1] == pytest.approx(600.0)
    assert xs[3] - xs[2] == pytest.approx(40.0)   # half a year becomes one break
    assert xs[1] - xs[0] == pytest.approx((xs[4] - xs[3]) / 2)  # one time scale in both runs
    assert xs == sorted(xs)
