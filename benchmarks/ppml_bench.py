"""PP-ELM benchmark: the full BFV protocol (one process per role) against Paillier.

Single configuration (default Shuttle, L = 1000, 5 parties)::

    python benchmarks/ppml_bench.py --dataset shuttle --parties 5 --hidden 1000

runs the whole protocol on loopback with BFV, then times python-paillier on a sample of the
*same* encoded values (one party's packed HᵀH/HᵀT) and extrapolates linearly to the full vector:
Paillier costs the same for every value (one modular exponentiation to encrypt, one
multiplication to add, one exponentiation to decrypt), so per-value time x values is honest.
BFV's encrypt/add/decrypt of the full vector is timed in the same run for the crypto-only ratio.

Grid for the docs table::

    python benchmarks/ppml_bench.py --grid --hidden 100 500 1000 --parties 3 5
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from darkscope.ppml import backends, datasets
from darkscope.ppml.bench import run_bench
from darkscope.ppml.encoding import FixedPoint, pack_sums
from darkscope.ppml.hidden import HiddenLayer, local_sums


def crypto_costs(dataset: str, parties: int, hidden: int, scale_bits: int, sample: int,
                 seed: int = 0) -> dict[str, float]:
    """Per-protocol crypto seconds: BFV measured in full, Paillier measured on ``sample`` values."""
    data = datasets.load(dataset, seed)
    share = datasets.split_among_parties(data.y_train, parties, seed)[0]
    layer = HiddenLayer(data.X_train.shape[1], hidden, "sigmoid", seed,
                        tuple(data.X_train.min(axis=0)), tuple(data.X_train.max(axis=0)))
    gram, cross = local_sums(layer, FixedPoint(scale_bits), data.X_train[share],
                             data.y_train[share], np.unique(data.y_train))
    values = pack_sums(gram, cross)
    n = len(values)

    bfv = backends.generate("bfv")
    t0 = time.perf_counter()
    encrypted = bfv.encrypt(values)
    t1 = time.perf_counter()
    total = bfv.add([encrypted] * parties)
    t2 = time.perf_counter()
    decrypted = bfv.decrypt(total, n)
    t3 = time.perf_counter()
    assert np.array_equal(decrypted, values * parties)

    paillier = backends.generate("paillier")
    part = values[:sample]
    p0 = time.perf_counter()
    p_encrypted = paillier.encrypt(part)
    p1 = time.perf_counter()
    p_total = paillier.add([p_encrypted] * parties)
    p2 = time.perf_counter()
    p_decrypted = paillier.decrypt(p_total, len(part))
    p3 = time.perf_counter()
    assert np.array_equal(p_decrypted, part * parties)
    per_value = n / len(part)
    bfv_crypto = (t1 - t0) + (t2 - t1) + (t3 - t2)
    paillier_crypto = ((p1 - p0) + (p2 - p1) + (p3 - p2)) * per_value
    return {"values_per_party": n, "paillier_sample": len(part),
            "bfv_encrypt_s": t1 - t0, "bfv_add_s": t2 - t1, "bfv_decrypt_s": t3 - t2,
            "bfv_crypto_s": bfv_crypto,
            "paillier_encrypt_s_est": (p1 - p0) * per_value,
            "paillier_add_s_est": (p2 - p1) * per_value,
            "paillier_decrypt_s_est": (p3 - p2) * per_value,
            "paillier_crypto_s_est": paillier_crypto,
            "paillier_bytes_per_party_est": sum(map(len, p_encrypted)) * per_value,
            "crypto_ratio": paillier_crypto / bfv_crypto}


def single(args: argparse.Namespace) -> None:
    report = run_bench(args.dataset, args.parties[0], args.hidden[0])
    report.pop("party_reports")
    costs = crypto_costs(args.dataset, args.parties[0], args.hidden[0], report["scale_bits"],
                         args.paillier_sample)
    # Paillier protocol = the BFV run with its crypto path replaced by Paillier's: the parties'
    # encryption (concurrent), the aggregator's additions and the key holder's decryption.
    bfv_crypto_path = (report["seconds_party_encrypt_max"] + report["seconds_aggregate_and_fetch"]
                       + report["seconds_decrypt"])
    rest = report["seconds_total"] - bfv_crypto_path
    serial = costs["paillier_add_s_est"] + costs["paillier_decrypt_s_est"]
    parties = args.parties[0]
    cores = min(parties, os.cpu_count() or 1)
    # Each party on its own machine: encryption wall time is one party's.
    separate = rest + costs["paillier_encrypt_s_est"] + serial
    # All parties on this machine, as in the BFV run: K encryptions share the cores.
    here = rest + costs["paillier_encrypt_s_est"] * parties / cores + serial
    summary = {**report, **costs, "cores": cores,
               "paillier_seconds_total_est_separate_machines": separate,
               "paillier_seconds_total_est_this_machine": here,
               "end_to_end_ratio_separate_machines": separate / report["seconds_total"],
               "end_to_end_ratio_this_machine": here / report["seconds_total"]}
    print(json.dumps(summary, indent=1, sort_keys=True))
    print(f"\n{args.dataset} L={args.hidden[0]} K={args.parties[0]}: BFV end to end "
          f"{report['seconds_total']:.1f} s (identical predictions: "
          f"{report['identical_predictions']}); Paillier est. {here:,.0f} s on this machine "
          f"({separate:,.0f} s with one machine per party); end-to-end ratio "
          f"{summary['end_to_end_ratio_this_machine']:,.0f}x "
          f"({summary['end_to_end_ratio_separate_machines']:,.0f}x); "
          f"crypto only {costs['crypto_ratio']:,.0f}x")


def grid(args: argparse.Namespace) -> None:
    print("| dataset | L | parties | acc. float | acc. plain (quantised) | acc. private | "
          "identical | total s | party max s | bytes/party |")
    print("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|")
    for dataset in args.datasets:
        for hidden in args.hidden:
            for parties in args.parties:
                r = run_bench(dataset, parties, hidden)
                print(f"| {dataset} | {hidden} | {parties} | {r['accuracy_float']:.4f} | "
                      f"{r['accuracy_plain']:.4f} | {r['accuracy_private']:.4f} | "
                      f"{r['identical_predictions']} | {r['seconds_total']:.1f} | "
                      f"{r['seconds_party_max']:.2f} | {r['bytes_per_party'] / 1e6:.1f} MB |",
                      flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="shuttle", choices=datasets.DATASETS)
    parser.add_argument("--datasets", nargs="+", default=list(datasets.DATASETS))
    parser.add_argument("--parties", type=int, nargs="+", default=[5])
    parser.add_argument("--hidden", type=int, nargs="+", default=[1000])
    parser.add_argument("--paillier-sample", type=int, default=200)
    parser.add_argument("--grid", action="store_true", help="Markdown table over the grid.")
    args = parser.parse_args()
    grid(args) if args.grid else single(args)


if __name__ == "__main__":
    main()
