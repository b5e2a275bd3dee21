"""Accuracy of verdicts against a simulator truth table (one row per source host).

Every window of a host carries the host's truth (``ddos``). ``needs_review`` counts as *not*
DDoS (the detector did not claim it), so precision/recall/F1 never profit from deferring;
the share sent to experts (answered or still waiting) is reported beside them. Rules alone:
the same windows, DDoS only where a DDoS rule fired.

Windows of hosts the truth table does not list (traffic from elsewhere, IPv6 hosts) have no
ground truth: they are left out of every score and counted as ``left_out_windows``; calling
them negatives would turn every DDoS verdict on them into a false positive.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from darkscope.errors import DarkscopeError

VERDICT_COLUMNS = ("src", "window_start", "verdict", "decided_by", "confidence")


def _scores(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    tp = int(np.sum(pred & truth))
    fp = int(np.sum(pred & ~truth))
    fn = int(np.sum(~pred & truth))
    tn = int(np.sum(~pred & ~truth))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn,
            "tn": tn}


def evaluate(verdicts: pa.Table, truth: pa.Table) -> dict[str, Any]:
    missing = [c for c in VERDICT_COLUMNS if c not in verdicts.column_names]
    if missing:
        raise DarkscopeError(f"verdicts lack column(s) {', '.join(missing)}")
    for column in ("src", "kind", "ddos"):
        if column not in truth.column_names:
            raise DarkscopeError(f"truth table lacks column {column!r}")
    if verdicts.num_rows == 0:
        raise DarkscopeError("no verdicts to evaluate")
    has_src = verdicts["src"].is_valid().to_numpy(zero_copy_only=False)
    all_src = verdicts["src"].cast(pa.int64()).fill_null(0).to_numpy().astype(np.uint64)
    t_src = truth["src"].to_numpy().astype(np.uint64)
    order = np.argsort(t_src)
    pos = np.minimum(np.searchsorted(t_src[order], all_src), len(t_src) - 1)
    found = (t_src[order][pos] == all_src) & has_src
    if not found.any():
        raise DarkscopeError("no verdict's host is in the truth table: nothing to score "
                             "(is it the truth of the same capture?)")
    left_out = int((~found).sum())
    src, pos = all_src[found], pos[found]
    verdicts = verdicts.filter(pa.array(found))
    ddos = truth["ddos"].to_numpy(zero_copy_only=False).astype(bool)[order][pos]
    kind = np.asarray(truth["kind"].to_pylist(), object)[order][pos]
    verdict = np.asarray(verdicts["verdict"].to_pylist(), object)
    by = np.asarray(verdicts["decided_by"].to_pylist(), object)
    rule = pc.starts_with(verdicts["decided_by"], "rule:").to_numpy(zero_copy_only=False)
    predicted = verdict == "ddos"
    review = verdict == "needs_review"
    expert = by == "expert"
    auto = ~review & ~expert
    report: dict[str, Any] = {
        "windows": len(src),
        "hosts": len(np.unique(src)),
        "ddos_windows": int(ddos.sum()),
        "left_out_windows": left_out,
        **_scores(predicted, ddos),
        "sent_to_experts": float((review | expert).mean()),
        "answered_by_experts": int(expert.sum()),
        "waiting_for_experts": int(review.sum()),
        "decided_by_rules": float(rule.mean()),
        "decided_by_model": float((by == "model").mean() - review.mean()),
        "rules_alone": _scores(rule & predicted, ddos),
        "automatic_only": _scores(predicted[auto], ddos[auto]) | {"windows": int(auto.sum())},
    }
    kinds: dict[str, dict[str, int]] = {}
    for name in sorted(set(kind.tolist())):
        mine = kind == name
        kinds[name] = {v: int(np.sum(mine & (verdict == v)))
                       for v in ("ddos", "not_ddos", "needs_review")}
        kinds[name]["by_expert"] = int(np.sum(mine & expert))
    report["by_kind"] = kinds
    return report


def format_report(report: dict[str, Any]) -> str:
    r = report
    lines = [
        f"{r['windows']:,} host-windows from {r['hosts']:,} hosts "
        f"({r['ddos_windows']:,} DDoS backscatter by truth)"
        + (f"; {r['left_out_windows']:,} windows of hosts not in the truth table left out"
           if r["left_out_windows"] else ""),
        f"DDoS  precision {r['precision']:.4f}  recall {r['recall']:.4f}  F1 {r['f1']:.4f}  "
        f"(tp {r['tp']}, fp {r['fp']}, fn {r['fn']}, tn {r['tn']})",
        f"sent to experts {r['sent_to_experts']:.2%} (answered {r['answered_by_experts']}, "
        f"waiting {r['waiting_for_experts']}); decided by rules {r['decided_by_rules']:.2%}, "
        f"by the model {r['decided_by_model']:.2%}",
        f"rules alone: precision {r['rules_alone']['precision']:.4f}  recall "
        f"{r['rules_alone']['recall']:.4f}  F1 {r['rules_alone']['f1']:.4f}",
        f"automatic verdicts only ({r['automatic_only']['windows']:,}): "
        f"F1 {r['automatic_only']['f1']:.4f}",
        "",
        f"{'kind':<12} {'ddos':>8} {'not_ddos':>9} {'review':>7} {'expert':>7}",
    ]
    for name, row in r["by_kind"].items():
        lines.append(f"{name:<12} {row['ddos']:>8} {row['not_ddos']:>9} "
                     f"{row['needs_review']:>7} {row['by_expert']:>7}")
    return "\n".join(lines)
