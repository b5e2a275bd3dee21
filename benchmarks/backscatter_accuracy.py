"""Backscatter detector accuracy on held-out simulated telescopes, through the CLI.

    python benchmarks/backscatter_accuracy.py [--train-seeds 1 2 3] [--seeds 7 11 13]

Training: the ``demo`` scenario or ``--train-scenario`` (``--train-hours``) at each training
seed, the review queue answered from its truth by the oracle (``--expert-budget 200``). Held
out: ``scenarios/heldout.toml`` (another date, prefix and mix: reply ports no minimal rule
covers, low-volume attacks, UDP scanners) at each held-out seed. For each configuration (the
default; without host context; payload features 16-17; the original method's minimal rules):
F1 of DDoS with the experts (oracle) answering every ``needs_review`` window, the share sent to
them, F1 of the automatic verdicts alone, and F1 of the rules alone.
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
CONFIGS = {  # name -> (rules, extra train options)
    "default": ("default", []),
    "no context": ("default", ["--context-below", 0]),
    "payload 16-17": ("default", ["--variant", "payload"]),
    "minimal rules": ("minimal", []),
}


def cli(*args: object) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([str(a) for a in args])
    if code:
        raise SystemExit(f"darkscope {' '.join(map(str, args))} failed ({code})")
    return out.getvalue()


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 11, 13])
    parser.add_argument("--train-hours", type=int, default=4)
    parser.add_argument("--train-scenario", default="demo",
                        help="Scenario of the training traffic (built-in name or TOML file).")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for seed in args.train_seeds:
            cli("simulate", "--scenario", args.train_scenario, "--duration",
                f"{args.train_hours}h", "--seed", seed, "-o", d / f"train{seed}.pcap", "--truth",
                d / f"train{seed}-truth.parquet")
        for seed in args.seeds:
            cli("simulate", "--scenario", HELDOUT, "--seed", seed, "-o", d / f"h{seed}.pcap",
                "--truth", d / f"h{seed}-truth.parquet")
        print("| configuration | training seed | held-out seed | F1 (experts answer the queue) "
              "| precision | recall | sent to experts | F1, automatic verdicts only | "
              "F1, rules alone |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name in args.configs:
            rules, options = CONFIGS[name]
            for train_seed in args.train_seeds:
                model = d / f"model-{train_seed}"
                cli("backscatter", "train", d / f"train{train_seed}.pcap", "--truth",
                    d / f"train{train_seed}-truth.parquet", "--expert-oracle", "--expert-budget",
                    200, "--rules", rules, *options, "--store", d / f"{name}-{train_seed}.db", "-o",
                    model, "--overwrite")
                for seed in args.seeds:
                    verdicts = d / "verdicts.parquet"
                    truth = d / f"h{seed}-truth.parquet"
                    cli("backscatter", "detect", d / f"h{seed}.pcap", "--model", model, "--rules",
                        rules, "--no-store", "--truth", truth, "--expert-oracle", "-o",
                        verdicts, "--overwrite")
                    r = json.loads(cli("backscatter", "evaluate", verdicts, "--truth", truth,
                                       "--json"))
                    print(f"| {name} | {train_seed} | {seed} | {r['f1']:.4f} | "
                          f"{r['precision']:.4f} | {r['recall']:.4f} | "
                          f"{r['sent_to_experts']:.2%} | {r['automatic_only']['f1']:.4f} | "
                          f"{r['rules_alone']['f1']:.4f} |", flush=True)


if __name__ == "__main__":
    main_()
