"""The planted Mirai patterns of the mirai-2016 scenario are found, in their period, with the
planted Mirai share (simulated days at scale 0.02, minimum support scaled to 1,000 x 0.02)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow.parquet as pq
import pytest

from darkscope.cli import main
from darkscope.patterns import MineSettings, mine
from darkscope.simulate import load_scenario, simulate

SCALE = 0.02
DAYS = ("2016-08-12", "2016-08-31", "2016-09-20")


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mirai2016")
    scenario = load_scenario("mirai-2016")
    captures, truths = [], []
    for day in DAYS:
        start = int(np.datetime64(f"{day}T00:00:00", "ns").astype(np.int64))
        one_day = dataclasses.replace(scenario, start_ns=start, duration_ns=86400 * 10**9)
        capture, truth = folder / f"{day}.pcap", folder / f"{day}-truth.parquet"
        simulate(one_day, capture, truth=truth, scale=SCALE, seed=5)
        captures.append(capture)
        truths.append(pq.read_table(truth).to_pandas())
    # every rule, lift 1 included: the published {tos=24, tos=184} -> {tos=0} has lift ~1
    rules = mine(captures, MineSettings(min_hosts=round(1000 * SCALE), all_rules=True,
                                        min_lift=0))
    return rules.to_pandas(), truths, captures


def _rule(rules, day: str, antecedent: list[str], consequent: str):
    day_rules = rules[rules.period_start.dt.strftime("%Y-%m-%d") == day]
    hit = day_rules[day_rules.antecedent.map(list).map(sorted).map(tuple)
                    == tuple(sorted(antecedent))]
    hit = hit[hit.consequent.map(list) .map(tuple) == (consequent,)]
    return hit.iloc[0] if len(hit) else None


# (day, antecedent, consequent, planted Mirai share, tolerance)
PLANTED = [
    ("2016-08-31", ["win=1320", "win=2376"], "win=792", 0.9, 0.08),
    ("2016-08-31", ["tos=24", "tos=184"], "tos=0", 0.6, 0.12),
    ("2016-08-31", ["tos=204", "tos=208", "tos=212"], "tos=216", 0.3, 0.12),
    ("2016-08-12", ["dport=40", "dport=666"], "dport=23", 0.0, 0.0),
    ("2016-09-20", ["tos=24", "tos=184"], "tos=0", 1.0, 0.02),
]


@pytest.mark.parametrize(("day", "antecedent", "consequent", "share", "tolerance"), PLANTED)
def test_planted_rule_found_with_planted_mirai_share(simulated, day, antecedent, consequent,
                                                     share, tolerance):
    rules, *_ = simulated
    row = _rule(rules, day, antecedent, consequent)
    assert row is not None, f"{antecedent} -> {consequent} not found on {day}"
    assert row.confidence >= 0.9
    assert abs(row.mirai_share - share) <= tolerance, row.mirai_share


def test_window_rule_absent_outside_its_period(simulated):
    rules, *_ = simulated
    assert _rule(rules, "2016-09-20", ["win=1320", "win=2376"], "win=792") is None
    assert _rule(rules, "2016-08-31", ["dport=40", "dport=666"], "dport=23") is None


def test_2323_rule_and_its_mirai_share_against_truth(simulated):
    """{2323} -> {23} on Sep 20: about 90% of its hosts are Mirai (the published figure; the
    other tenth of the planted population scans the same ports without Mirai's fingerprint)."""
    rules, truths, _ = simulated
    row = _rule(rules, "2016-09-20", ["dport=2323"], "dport=23")
    assert row is not None
    assert row.support_hosts > 0.5 * 480_000 * SCALE
    assert _rule(rules, "2016-08-12", ["dport=2323"], "dport=23") is None
    truth = truths[2]
    mirai_hosts = (truth.kind == "mirai").sum()
    assert abs(row.mirai_share - 0.9) <= 0.06, row.mirai_share
    # every Mirai-fingerprinted host carrying the rule is a true Mirai host: the share cannot
    # exceed the true Mirai hosts among the rule's support
    assert row.mirai_share * row.support_hosts <= mirai_hosts


def test_default_output_ranks_planted_patterns_by_lift(simulated):
    """Grouped output with the defaults: no lift-1 noise such as {dport=X} -> {tos=0}, rows in
    lift order, and the planted patterns readable in their published form near the top."""
    *_, captures = simulated
    grouped = mine(captures[1:2], MineSettings(min_hosts=round(1000 * SCALE))).to_pandas()
    assert (grouped.lift >= 1.05).all()
    assert not any(list(c) == ["tos=0"] for c in grouped.consequent)
    assert list(grouped.lift) == sorted(grouped.lift, reverse=True)
    forms = set(grouped.published_form.dropna())
    assert "win: {1320, 2376} -> {792}" in forms
    assert "tos: {208, 212, 216} -> {204}" in forms


def test_cli_prints_published_forms_first(simulated, tmp_path, capsys):
    """What the analyst reads on the terminal: each planted itemset once, in published form,
    ahead of the port co-occurrence rules (lift ~7) and without lift-1 rules."""
    *_, captures = simulated
    assert main(["rules", "mine", str(captures[1]), "--min-hosts", str(round(1000 * SCALE)),
                 "-o", str(tmp_path / "rules.parquet"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    lines = out.split("top patterns by lift:\n")[1].splitlines()
    assert len(lines) == 10
    text = [line.split("%  ", 1)[1] for line in lines]
    assert text[:3] == ["tos: {208, 212, 216} -> {204}", "tos: {0, 184} -> {24}",
                        "win: {1320, 2376} -> {792}"], lines
    assert "Mirai" in lines[2] and "-> {tos=0}" not in out
