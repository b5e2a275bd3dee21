"""Backscatter detector accuracy on held-out simulated telescopes, through the CLI.

    python benchmarks/backscatter_accuracy.py [--seeds 7 8 9] [--train-hours 4]

Training: the ``demo`` scenario or ``--train-scenario`` (seed 1, ``--train-hours``), the
review queue answered from its truth by the oracle (``--expert-budget 200``). Held out:
``scenarios/heldout.toml`` (another date, prefix and mix: reply ports no minimal rule covers,
low-volume attacks, UDP scanners) at each seed. For each rule set and feature variant: F1 of
DDoS with the experts (oracle) answering every ``needs_review`` window, the share sent to them,
F1 of the automatic verdicts alone, and F1 of the rules alone.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
from pathlib import Path

from darkscope.cli import main

HELDOUT = Path(__file__).resolve().parents[1] / "src/darkscope/backscatter/scenarios/heldout.toml"


def cli(*args: object) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([str(a) for a in args])
    if code:
        raise SystemExit(f"darkscope {' '.join(map(str, args))} failed ({code})")
    return out.getvalue()


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 8, 9])
    parser.add_argument("--train-hours", type=int, default=4)
    parser.add_argument("--train-scenario", default="demo",
                        help="Scenario of the training traffic (built-in name or TOML file).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        cli("simulate", "--scenario", args.train_scenario, "--duration", f"{args.train_hours}h",
            "--seed", 1, "-o", d / "train.pcap", "--truth", d / "train-truth.parquet")
        for seed in args.seeds:
            cli("simulate", "--scenario", HELDOUT, "--seed", seed, "-o", d / f"h{seed}.pcap",
                "--truth", d / f"h{seed}-truth.parquet")
        print("| rules | features 16-17 | held-out seed | F1 (experts answer the queue) | "
              "precision | recall | sent to experts | F1, automatic verdicts only | "
              "F1, rules alone |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for rules in ("default", "minimal"):
            for variant in ("dst-span", "payload"):
                model = d / f"model-{rules}-{variant}"
                cli("backscatter", "train", d / "train.pcap", "--truth", d / "train-truth.parquet",
                    "--expert-oracle", "--expert-budget", 200, "--rules", rules, "--variant",
                    variant, "--store", d / f"{rules}-{variant}.db", "-o", model)
                for seed in args.seeds:
                    verdicts = d / f"v-{rules}-{variant}-{seed}.parquet"
                    truth = d / f"h{seed}-truth.parquet"
                    cli("backscatter", "detect", d / f"h{seed}.pcap", "--model", model, "--rules",
                        rules, "--no-store", "--truth", truth, "--expert-oracle", "-o",
                        verdicts)
                    r = json.loads(cli("backscatter", "evaluate", verdicts, "--truth", truth,
                                       "--json"))
                    print(f"| {rules} | {variant} | {seed} | {r['f1']:.4f} | "
                          f"{r['precision']:.4f} | {r['recall']:.4f} | "
                          f"{r['sent_to_experts']:.2%} | {r['automatic_only']['f1']:.4f} | "
                          f"{r['rules_alone']['f1']:.4f} |", flush=True)


if __name__ == "__main__":
    main_()
