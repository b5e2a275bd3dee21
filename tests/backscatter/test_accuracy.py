"""Accuracy on held-out simulated traffic (another seed and mix than training) and on the real
TCP reflection capture; victims against the simulator's attack table."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from darkscope.backscatter import persist
from darkscope.backscatter.evaluate import evaluate
from darkscope.backscatter.flow import ask_oracle, decide, verdict_table
from darkscope.backscatter.inputs import read_packets
from darkscope.backscatter.rules import load_rules
from darkscope.backscatter.telescope import resolve
from darkscope.backscatter.victims import victims
from darkscope.data import sample_capture


@pytest.fixture(scope="module")
def heldout_run(sim_heldout, model_dir):
    table = read_packets([sim_heldout.capture])
    scope = resolve(None, table)
    decisions = decide(table, persist.load(model_dir), load_rules(), scope)
    before = evaluate(verdict_table(decisions), pq.read_table(sim_heldout.truth))
    ask_oracle(decisions, pq.read_table(sim_heldout.truth), None, None)
    return table, scope, decisions, before


def test_heldout_f1_with_experts(heldout_run, sim_heldout) -> None:
    _, _, decisions, before = heldout_run
    report = evaluate(verdict_table(decisions), pq.read_table(sim_heldout.truth))
    # The goal: F1 >= 0.98 with <= 5 % sent to experts (12 seed pairs: F1 0.988-0.997 with
    # 3.3-3.8 %; docs/backscatter.md)
    assert report["f1"] >= 0.98, report
    assert report["sent_to_experts"] <= 0.05, report
    assert before["automatic_only"]["f1"] >= 0.98, before
    assert report["f1"] > report["rules_alone"]["f1"] + 0.05
    # rules never call a non-DDoS host DDoS here
    assert report["rules_alone"]["precision"] == 1.0
    # sparse windows were judged on their host's longer context, never on fewer packets
    context = decisions.context_packets
    assert (context > 0).sum() > 20
    assert (context[context > 0] > decisions.windows.packets[context > 0]).all()
    # no NaN anywhere
    assert np.isfinite(decisions.confidence).all() and np.isfinite(decisions.windows.X).all()


def test_victims_match_the_attack_table(heldout_run, sim_heldout) -> None:
    table, scope, decisions, _ = heldout_run
    found = victims(table, verdict_table(decisions), scope).to_pandas()
    attacks = pq.read_table(sim_heldout.attacks).to_pandas()
    seen = attacks[attacks.packets > 0]
    assert np.isin(found.victim, seen.sender).mean() >= 0.97
    assert found.victim.nunique() >= 0.9 * seen.sender.nunique()
    # Moore et al.'s scaling recovers the rate at the victim for clear single attacks
    merged = found.merge(seen, left_on="victim", right_on="sender", suffixes=("", "_true"))
    single = merged.groupby("victim").filter(lambda g: len(g) == 1)
    single = single[single.packets_true >= 30]
    ratio = single.estimated_attack_pps / single.victim_pps
    assert len(ratio) >= 10 and 0.7 <= ratio.median() <= 1.5


def test_real_reflection_capture(model_dir) -> None:
    table = read_packets([sample_capture()])
    scope = resolve(None, table)
    decisions = decide(table, persist.load(model_dir), load_rules(), scope)
    src = table["src"].to_numpy()
    flags = table["tcp_flags"].to_numpy(zero_copy_only=False)
    synack_hosts = set(src[flags == 0x12].tolist())
    verdict = dict(zip(decisions.windows.src.tolist(), decisions.verdict.tolist(), strict=True))
    assert len(synack_hosts) == 7
    assert all(verdict[h] == 1 for h in synack_hosts)
    syn_only = set(src.tolist()) - synack_hosts
    assert sum(verdict[h] == 1 for h in syn_only) == 0
