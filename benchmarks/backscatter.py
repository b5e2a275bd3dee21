"""Backscatter detector speed: feature extraction (packets/s) against a plain pandas groupby of
the same 17 features, and verdicts (host-windows/s), in one run.

    python benchmarks/backscatter.py [--packets 5000000] [--windows 1000000]

Input: one simulated hour of the ``demo`` scenario (seed 1), copied with shifted source
addresses until it holds ``--packets`` packets (realistic per-host distributions, many hosts),
in time order. The pandas peer computes the same definitions (``reference.py``; the test suite
checks that both agree) on the same table. Verdicts: the full flow (features, rules, gate,
classifier) on that table, and the gate + calibrated classifier alone on ``--windows`` rows.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from darkscope.backscatter.features import FeatureDefinition, extract
from darkscope.backscatter.flow import decide
from darkscope.backscatter.inputs import read_packets
from darkscope.backscatter.reference import reference_features
from darkscope.backscatter.rules import load_rules
from darkscope.backscatter.telescope import resolve
from darkscope.backscatter.training import train
from darkscope.simulate import load_scenario, simulate

warnings.filterwarnings("ignore", category=UserWarning)


def best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_table(packets: int, workdir: Path) -> pa.Table:
    capture = workdir / "demo.pcap"
    simulate(load_scenario("demo"), capture, seed=1)
    hour = read_packets([capture])
    copies = max(1, -(-packets // hour.num_rows))
    parts = []
    for i in range(copies):
        src = pc.bit_wise_xor(hour["src"], pa.scalar(i * 0x01000193 & 0xFFFFFFFF, pa.uint32()))
        parts.append(hour.set_column(hour.column_names.index("src"), "src", src))
    table = pa.concat_tables(parts).slice(0, packets)
    return table.take(pc.sort_indices(table["ts"])).combine_chunks()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=5_000_000)
    parser.add_argument("--windows", type=int, default=1_000_000)
    args = parser.parse_args()
    definition = FeatureDefinition()
    with tempfile.TemporaryDirectory() as tmp:
        table = bench_table(args.packets, Path(tmp))
    n = table.num_rows
    extract(table.slice(0, 10_000), definition)  # compile/load the kernels once
    ours = best(lambda: extract(table, definition))
    windows = extract(table, definition)
    print(f"input: {n:,} packets, {len(windows):,} host-windows ({definition.describe()})")
    print(f"features, darkscope (hash group-ids + one time-ordered pass): {ours:.2f} s = "
          f"{n / ours / 1e6:.2f} M packets/s")
    start = time.perf_counter()
    reference = reference_features(table, definition)
    peer = time.perf_counter() - start
    assert len(reference) == len(windows)
    print(f"features, pandas groupby (same definitions): {peer:.2f} s = "
          f"{n / peer / 1e6:.2f} M packets/s  -> darkscope is {peer / ours:.1f}x faster")

    rules = load_rules()
    scope = resolve(None, table)
    saved, _ = train(table.slice(0, min(n, 500_000)), rules, scope, definition=definition)
    flow = best(lambda: decide(table, saved, rules, scope), repeat=2)
    print(f"full flow (features, rules, gate, classifier): {flow:.2f} s = "
          f"{len(windows) / flow:,.0f} host-windows/s ({n / flow / 1e6:.2f} M packets/s)")
    rows = np.resize(windows.X, (args.windows, windows.X.shape[1]))
    model = best(lambda: saved.model.decide(rows), repeat=2)
    print(f"gate + calibrated L2-SVM alone: {args.windows:,} host-windows in {model:.2f} s = "
          f"{args.windows / model:,.0f} verdicts/s")


if __name__ == "__main__":
    main()
