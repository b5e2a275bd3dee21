"""The commands end to end on simulated traffic: captures and Parquet tables give the same rules,
attribution matches the simulator's truth, bad input gives one clear line and a non-zero exit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from darkscope.cli import main
from darkscope.simulate import load_scenario, simulate


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    simulate(load_scenario("demo"), folder / "demo.pcap", truth=folder / "truth.parquet",
             table=folder / "table", seed=4)
    return folder


def test_attribution_matches_truth(demo, capsys):
    out = demo / "hosts.parquet"
    assert main(["hosts", "attribute", str(demo / "demo.pcap"), "-o", str(out)]) == 0
    hosts = pd.read_parquet(out).merge(pd.read_parquet(demo / "truth.parquet"), on="src",
                                       suffixes=("", "_truth"))
    for family in ("mirai", "zmap", "masscan"):
        truly = hosts.kind == family
        assert truly.sum() > 0
        assert (hosts.family[truly] == family).all()
        assert ((hosts.family == family) == truly).all()
    assert set(hosts.columns) >= {"src", "period_start", "family", "match_share", "packets"}


def test_capture_and_hour_partitioned_table_give_the_same_rules(demo):
    a, b = demo / "a.parquet", demo / "b.csv"
    assert main(["rules", "mine", str(demo / "demo.pcap"), "--min-hosts", "20", "-o",
                 str(a)]) == 0
    assert main(["rules", "mine", str(demo / "table"), "--min-hosts", "20", "-o", str(b)]) == 0
    rules_a = pq.read_table(a).to_pandas()
    rules_b = pd.read_csv(b)
    assert len(rules_a) > 0
    assert len(rules_a) == len(rules_b)
    assert list(rules_a.support_hosts) == list(rules_b.support_hosts)
    assert list(rules_a.pattern) == list(rules_b.pattern)


def test_timeline_page_is_self_contained_and_escaped(demo, tmp_path):
    rules = tmp_path / "rules.parquet"
    assert main(["rules", "mine", str(demo / "demo.pcap"), "--min-hosts", "20", "--period",
                 "10m", "-o", str(rules)]) == 0
    page, png, table = tmp_path / "t.html", tmp_path / "t.png", tmp_path / "t.parquet"
    assert main(["rules", "timeline", str(rules), "-o", str(page), "--png", str(png),
                 "--table", str(table), "--event", "2016-08-20T12:30=<script>x</script>"]) == 0
    text = page.read_text()
    assert "&lt;script&gt;x&lt;/script&gt;" in text and "<script>" not in text
    assert "data:image/png;base64," in text and "http" not in text.split("<body>")[1]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    timeline = pq.read_table(table).to_pandas()
    assert timeline.periods_seen.max() > 1
    assert (timeline.peak_hosts == timeline.daily_hosts.map(max)).all()


@pytest.mark.parametrize(("args", "message"), [
    (["--min-hosts", "100000"], "above the number of hosts in every period"),
    (["--items", "win,nope"], "unknown item name(s) 'nope'"),
    (["--period", "3x"], "period '3x'"),
    (["--min-hosts", "5", "--min-confidence", "2"], "minimum confidence"),
])
def test_bad_options_are_one_clear_line(demo, tmp_path, capsys, args, message):
    out = tmp_path / "r.parquet"
    code = main(["rules", "mine", str(demo / "demo.pcap"), "-o", str(out), *args])
    err = capsys.readouterr().err
    assert code != 0
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_empty_and_foreign_inputs(tmp_path, capsys):
    empty = tmp_path / "empty.pcap"
    simulate(load_scenario("demo"), tmp_path / "x.pcap", seed=1)
    empty.write_bytes((tmp_path / "x.pcap").read_bytes()[:24])      # header only
    assert main(["rules", "mine", str(empty), "-o", str(tmp_path / "r.parquet")]) == 1
    assert "no IPv4 packets" in capsys.readouterr().err
    foreign = tmp_path / "foreign.parquet"
    pq.write_table(pd.DataFrame({"a": [1]}).pipe(__import__("pyarrow").Table.from_pandas),
                   foreign)
    assert main(["hosts", "attribute", str(foreign), "-o", str(tmp_path / "h.parquet")]) == 1
    assert "not a packet table" in capsys.readouterr().err


def test_counters_agree_end_to_end_with_a_support_fraction(demo, tmp_path):
    outputs = []
    for engine in ("apriori", "fpgrowth"):
        out = tmp_path / f"{engine}.parquet"
        assert main(["rules", "mine", str(demo / "demo.pcap"), "--min-support", "0.02",
                     "--all-rules", "--counter", engine, "--items", "win,tos,dport,ttl,opts",
                     "-o", str(out)]) == 0
        outputs.append(pq.read_table(out).to_pandas())
    apriori, fpgrowth = outputs
    assert len(apriori) > 0
    key = ["pattern", "support_hosts", "confidence"]
    pd.testing.assert_frame_equal(
        apriori.assign(a=apriori.antecedent.map(tuple)).sort_values(["a", *key])[key]
        .reset_index(drop=True),
        fpgrowth.assign(a=fpgrowth.antecedent.map(tuple)).sort_values(["a", *key])[key]
        .reset_index(drop=True))
    assert (apriori.support_hosts >= 0.02 * apriori.period_hosts).all()


def test_inputs_out_of_time_order_are_refused(tmp_path, capsys):
    """A period is mined once the stream has moved past it; a packet arriving for it later
    is refused rather than silently splitting the period."""
    import dataclasses

    scenario = load_scenario("demo")
    day = 86400 * 10**9
    captures = {}
    for name, offset in (("day0", 0), ("day3", 3), ("day4", 4)):
        captures[name] = tmp_path / f"{name}.parquet"        # one batch per table file
        simulate(dataclasses.replace(scenario, start_ns=scenario.start_ns + offset * day),
                 tmp_path / f"{name}.pcap", table=captures[name], seed=1)
    out = tmp_path / "r.parquet"
    order = [str(captures[n]) for n in ("day3", "day4", "day0")]
    assert main(["rules", "mine", *order, "--min-hosts", "5", "-o", str(out)]) == 1
    assert "not in time order" in capsys.readouterr().err
    assert not out.exists()
    order = [str(captures[n]) for n in ("day0", "day3", "day4")]
    assert main(["rules", "mine", *order, "--min-hosts", "5", "-o", str(out)]) == 0
    assert len(pq.read_table(out).column("period_start").unique()) == 3


def test_zmap_after_4_1_is_still_attributed(tmp_path):
    """ZMap 4.1 (2024) dropped the fixed IP ID 54321; window 65535 with one MSS option remains."""
    from importlib.resources import files

    import darkscope.packets
    from darkscope.simulate import parse_scenario

    text = (files("darkscope.simulate") / "scenarios" / "demo.toml").read_text()
    scenario = parse_scenario(text.replace('start = "2016-08-20T12:00:00Z"',
                                           'start = "2025-03-01T12:00:00Z"'))
    capture, truth = tmp_path / "2025.pcap", tmp_path / "truth.parquet"
    simulate(scenario, capture, truth=truth, seed=2)
    out = tmp_path / "hosts.parquet"
    assert main(["hosts", "attribute", str(capture), "-o", str(out)]) == 0
    hosts = pd.read_parquet(out).merge(pd.read_parquet(truth), on="src", suffixes=("", "_t"))
    zmap_hosts = hosts.src[hosts.kind == "zmap"].to_numpy()
    packets = darkscope.packets.read(capture).to_pandas()
    assert not (packets.ip_id[packets.src.isin(zmap_hosts)] == 54321).any()
    for family in ("zmap", "masscan", "mirai"):
        assert (hosts.kind == family).sum() > 0
        assert ((hosts.family == family) == (hosts.kind == family)).all(), family


def test_timeline_reads_every_format_mine_writes(demo, tmp_path, capsys):
    tables = {}
    for suffix in ("parquet", "csv", "jsonl"):
        rules = tmp_path / f"rules.{suffix}"
        assert main(["rules", "mine", str(demo / "demo.pcap"), "--min-hosts", "20", "-o",
                     str(rules)]) == 0
        table = tmp_path / f"timeline-{suffix}.parquet"
        assert main(["rules", "timeline", str(rules), "-o", str(tmp_path / f"{suffix}.html"),
                     "--table", str(table)]) == 0
        tables[suffix] = pq.read_table(table)
    assert tables["parquet"].num_rows > 0
    assert tables["csv"].equals(tables["parquet"]) and tables["jsonl"].equals(tables["parquet"])
    capsys.readouterr()
    assert main(["rules", "timeline", str(tmp_path / "missing.parquet"), "-o",
                 str(tmp_path / "x.html")]) == 2
    assert "missing.parquet: no such file" in capsys.readouterr().err


def test_timeline_axis_spans_the_periods():
    from darkscope.patterns.timeline import axis_span

    day = 86400 * 10**9
    assert axis_span(np.array([100 * day])) == (99 * day, 101 * day)
    assert axis_span(np.array([100 * day, 101 * day, 105 * day])) == (
        100 * day - day // 2, 105 * day + day // 2)


def test_each_rule_keeps_its_busiest_hosts_recounted_from_the_packets(demo, tmp_path):
    """``support_src``: the hosts carrying every item of the rule, busiest first, recounted
    here with pandas from the packets (the item policy: a value of a kind is a host's item if
    it carries 5% of the host's SYNs, is among its 8 busiest values of that kind, and the host
    did not show more than 64 values of that kind)."""
    out = tmp_path / "rules.parquet"
    assert main(["rules", "mine", str(demo / "table"), "--min-hosts", "20", "--all-rules",
                 "-o", str(out)]) == 0
    rules = pq.read_table(out).to_pandas()
    kinds = ["dport", "win", "tos"]
    packets = pq.read_table(demo / "table", columns=["ts", "src", "proto", "tcp_flags",
                                                     *kinds]).to_pandas()
    packets = packets[packets.src.notna()]
    packets["period"] = packets.ts.astype("int64") // (86400 * 10**9) * (86400 * 10**9)
    tcp = packets[(packets.proto == 6) & packets.tcp_flags.notna()]
    syn = tcp[(tcp.tcp_flags.astype(int) & 0x12) == 2]
    carried = []
    for kind in kinds:
        counts = (syn.dropna(subset=[kind]).groupby(["period", "src", kind]).size()
                  .rename("n").reset_index().rename(columns={kind: "value"}))
        counts["total"] = counts.groupby(["period", "src"]).n.transform("sum")
        counts["distinct"] = counts.groupby(["period", "src"]).n.transform("size")
        counts = counts.sort_values(["period", "src", "n", "value"],
                                    ascending=[True, True, False, True])
        counts["rank"] = counts.groupby(["period", "src"]).cumcount()
        kept = counts[(counts.n >= 0.05 * counts.total) & (counts["rank"] < 8)
                      & (counts.distinct <= 64)]
        carried.append(kept.assign(item=kind + "=" + kept.value.astype(int).astype(str)))
    items = pd.concat(carried)
    held = {key: set(group.item) for key, group in items.groupby(["period", "src"])}
    busy = packets.groupby(["period", "src"]).size()
    checked = 0
    for rule in rules.itertuples():
        wanted = {*rule.antecedent, *rule.consequent}
        if any("*sweep*" in w for w in wanted):
            continue  # sweepers' single item is not recounted here
        period = rule.period_start.value
        carriers = [src for (p, src), got in held.items() if p == period and wanted <= got]
        order = sorted(carriers, key=lambda s: (-busy[(period, s)], s))[:1000]
        assert list(rule.support_src) == order, rule.pattern
        assert len(rule.support_src) == min(rule.support_hosts, 1000)
        checked += 1
    assert checked >= 10
