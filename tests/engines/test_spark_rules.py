"""The labelling rules decide the same host-windows on Spark as on the local engine: the
held-out day with the default and the minimal rule sets, and a dual-stack capture whose ICMPv6
errors quote telescope sources, with the telescope's IPv6 block on and off a nibble boundary."""

from __future__ import annotations

import ipaddress
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from darkscope.backscatter.features import FeatureDefinition, extract
from darkscope.backscatter.inputs import read_packets
from darkscope.backscatter.rules import NO_RULE, apply_rules, load_rules
from darkscope.backscatter.telescope import Telescope, parse_telescope
from darkscope.engines.spark import packets, rules

DARKSCOPE = str(Path(sys.executable).parent / "darkscope")


def _decided(spark, path: Path, ruleset, telescope: Telescope) -> dict:
    table = read_packets(path)
    definition = FeatureDefinition()
    windows = extract(table, definition)
    index, _ = apply_rules(ruleset, table, windows.row_of_packet, len(windows),
                           windows.packets, telescope)
    local = {(windows.src6[i].tobytes().hex() if windows.is6[i] else str(windows.src[i]),
              int(windows.window_start[i])): int(index[i]) for i in range(len(windows))}
    rows = packets.detector_rows(packets.read(spark, [str(path)]))
    theirs = {(r["host"], r["window_start"]): r["rule"] for r in rules.deciding_rules(
        rows, ruleset, telescope, definition.window_s).collect()}
    assert theirs == local
    return local


@pytest.mark.parametrize("which", ["default", "minimal"])
def test_rules_decide_the_same_windows(spark, sim_heldout, which):
    ruleset = load_rules(which)
    decided = _decided(spark, sim_heldout.table, ruleset, parse_telescope("203.0.0.0/16"))
    fired = Counter(i for i in decided.values() if i != NO_RULE)
    assert len(fired) >= 3, fired   # several rules, not only the commonest
    assert NO_RULE in decided.values()


def test_quoted_ipv6_sources_are_matched_by_prefix_bits(spark, tmp_path):
    from tests.backscatter.test_ipv6 import TELESCOPE4, TELESCOPE6, _build

    capture = tmp_path / "dual-stack.pcap"
    _build(capture, random.Random(6))
    table = tmp_path / "dual-stack.parquet"
    subprocess.run([DARKSCOPE, "ingest", str(capture), "-o", str(table), "--no-progress"],
                   check=True, capture_output=True)
    ruleset = load_rules()
    icmp6 = ruleset.ids.index("icmpv6-error-quoting-telescope")
    decided = _decided(spark, table, ruleset, Telescope(TELESCOPE4, TELESCOPE6))
    assert icmp6 in decided.values()
    # /45 holds the /48 (prefix ends inside a nibble); /49 next to it does not
    wider = Telescope(TELESCOPE4, ipaddress.IPv6Network("2001:db8:a8::/45"))
    assert icmp6 in _decided(spark, table, ruleset, wider).values()
    beside = Telescope(TELESCOPE4, ipaddress.IPv6Network("2001:db8:ab:8000::/49"))
    _decided(spark, table, ruleset, beside)
