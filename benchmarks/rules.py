"""Association rules on the same host transactions: darkscope vs pyfim vs mlxtend vs Spark MLlib.

    python benchmarks/rules.py --hosts 2000000 --min-hosts 1000
    python benchmarks/rules.py --hosts 2000000 --tools darkscope,pyfim,mlxtend,spark \
        --subset-hosts 200000        # mlxtend and Spark on the first 200,000 hosts only

Every tool runs in its own process (peak memory = its maximum resident set; Spark adds its JVM's)
on the same transactions (benchmarks/_transactions.py), from the same in-memory CSR matrix, with
the same definitions: support counted in hosts (itemset X ∪ {y}) >= --min-hosts, confidence >=
--min-confidence, at most --max-len items, single-item consequents. Each tool's rules are compared
with darkscope's on the same hosts, and the time ratio to darkscope is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _transactions import generate

Rule = tuple[tuple[str, ...], str, int]


def _rules_darkscope(matrix: sp.csr_matrix, names: list[str], args) -> list[Rule]:
    from darkscope.patterns.mining import mine_rules
    from darkscope.patterns.transactions import Transactions

    tx = Transactions(np.arange(matrix.shape[0], dtype=np.uint32), matrix, names,
                      np.arange(matrix.shape[1], dtype=np.uint32))
    rules = mine_rules(tx, args.min_hosts, args.min_confidence, args.max_len)
    return [(tuple(sorted(names[i] for i in rules.antecedents[k])),
             names[int(rules.consequents[k])],
             int(rules.support[k])) for k in range(len(rules))]


def _rules_pyfim(matrix: sp.csr_matrix, names: list[str], args) -> list[Rule]:
    import fim

    lists = [row.tolist() for row in np.split(matrix.indices, matrix.indptr[1:-1])]
    found = fim.fpgrowth(lists, target="r", supp=-args.min_hosts, conf=args.min_confidence * 100,
                         zmin=2, zmax=args.max_len, report="a", mode="o")
    return [(tuple(sorted(names[i] for i in body)), names[head], int(support))
            for head, body, support in found]


def _rules_mlxtend(matrix: sp.csr_matrix, names: list[str], args) -> list[Rule]:
    import pandas as pd
    from mlxtend.frequent_patterns import association_rules, fpgrowth

    # Favourable to mlxtend: only columns that can be frequent (pandas is slow with 70k columns).
    support = np.bincount(matrix.indices, minlength=matrix.shape[1])
    columns = np.flatnonzero(support >= args.min_hosts)
    frame = pd.DataFrame.sparse.from_spmatrix(matrix[:, columns].astype(bool),
                                              columns=[names[i] for i in columns])
    n = matrix.shape[0]
    itemsets = fpgrowth(frame, min_support=args.min_hosts / n, use_colnames=True,
                        max_len=args.max_len)
    rules = association_rules(itemsets, metric="confidence", min_threshold=args.min_confidence,
                              num_itemsets=len(itemsets))
    rules = rules[rules.consequents.map(len) == 1]
    return [(tuple(sorted(a)), next(iter(c)), round(s * n))
            for a, c, s in zip(rules.antecedents, rules.consequents, rules.support, strict=True)]


def _rules_spark(matrix: sp.csr_matrix, names: list[str], args) -> list[Rule]:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyspark.ml.fpm import FPGrowth
    from pyspark.sql import SparkSession

    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "tx.parquet")
        items = pa.ListArray.from_arrays(pa.array(matrix.indptr.astype(np.int32)),
                                         pa.array(matrix.indices.astype(np.int32)))
        pq.write_table(pa.table({"items": items}), path)
        spark = (SparkSession.builder.master("local[2]").config("spark.driver.memory", "12g")
                 .config("spark.ui.enabled", "false").getOrCreate())
        spark.sparkContext.setLogLevel("ERROR")
        n = matrix.shape[0]
        data = spark.read.parquet(path)
        model = FPGrowth(itemsCol="items", minSupport=(args.min_hosts - 0.5) / n,
                         minConfidence=args.min_confidence).fit(data)
        rows = model.associationRules.collect()
        jvm = spark.sparkContext._jvm.ProcessHandle.current().pid()
        _jvm_peak[0] = _peak_of(int(jvm))
        spark.stop()
    return [(tuple(sorted(names[i] for i in r.antecedent)), names[r.consequent[0]],
             round(r.support * n)) for r in rows if len(r.antecedent) + 1 <= args.max_len]


_jvm_peak = [0]


def _peak_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


TOOLS = {"darkscope": _rules_darkscope, "pyfim": _rules_pyfim, "mlxtend": _rules_mlxtend,
         "spark": _rules_spark}


MODULES = {"darkscope": ("darkscope.patterns.mining", "darkscope.patterns.transactions", "fim"),
           "pyfim": ("fim",), "mlxtend": ("pandas", "mlxtend.frequent_patterns"),
           "spark": ("pyspark.ml.fpm", "pyspark.sql", "pyarrow.parquet")}


def child(args) -> None:
    import importlib

    for module in MODULES[args.child]:        # imports are not part of the measured time
        importlib.import_module(module)
    loaded = np.load(args.data, allow_pickle=False)
    matrix = sp.csr_matrix((loaded["data"], loaded["indices"], loaded["indptr"]),
                           shape=tuple(loaded["shape"]))
    names = Path(args.names).read_text().split("\n")
    started = time.perf_counter()
    rules = TOOLS[args.child](matrix, names, args)
    seconds = time.perf_counter() - started
    # VmHWM, not ru_maxrss: ru_maxrss keeps the forking parent's size across exec
    peak = _peak_of(os.getpid()) + _jvm_peak[0]
    Path(args.out).write_text(json.dumps({"seconds": seconds, "peak": peak,
                                          "rules": sorted(map(list, rules))}))


def run(tool: str, data: Path, names: Path, out: Path, args) -> dict:
    command = [sys.executable, __file__, "--child", tool, "--data", str(data), "--names",
               str(names), "--out", str(out), "--min-hosts", str(args.min_hosts),
               "--min-confidence", str(args.min_confidence), "--max-len", str(args.max_len)]
    subprocess.run(command, check=True)
    result = json.loads(out.read_text())
    result["rules"] = {(tuple(a), c, s) for a, c, s in result["rules"]}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=2_000_000)
    parser.add_argument("--subset-hosts", type=int, default=200_000,
                        help="hosts for the tools in --slow-tools (0: all hosts)")
    parser.add_argument("--slow-tools", default="mlxtend,spark")
    parser.add_argument("--tools", default="darkscope,pyfim,mlxtend,spark")
    parser.add_argument("--min-hosts", type=int, default=1000)
    parser.add_argument("--min-confidence", type=float, default=0.9)
    parser.add_argument("--max-len", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", choices=TOOLS)
    parser.add_argument("--data")
    parser.add_argument("--names")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    tools = [t for t in args.tools.split(",") if t]
    slow = set(args.slow_tools.split(","))
    started = time.perf_counter()
    matrix, names = generate(args.hosts, args.seed)
    print(f"{args.hosts:,} hosts, {matrix.nnz / args.hosts:.1f} items per host, "
          f"{len(names):,} distinct items; generated in {time.perf_counter() - started:.1f} s")
    with tempfile.TemporaryDirectory() as folder:
        names_path = Path(folder) / "names.txt"
        names_path.write_text("\n".join(names))
        sizes = sorted({args.hosts} | ({args.subset_hosts} if args.subset_hosts and slow
                                       & set(tools) else set()))
        for hosts in sizes:
            part = matrix[:hosts]
            data = Path(folder) / f"tx{hosts}.npz"
            np.savez(data, data=part.data, indices=part.indices, indptr=part.indptr,
                     shape=np.array(part.shape))
            print(f"\n## {hosts:,} hosts (min support {args.min_hosts:,} hosts, confidence >= "
                  f"{args.min_confidence}, at most {args.max_len} items)")
            print("| tool | time (s) | peak memory (GB) | rules | same rules as darkscope | "
                  "time / darkscope |\n|---|---:|---:|---:|---|---:|")
            base = None
            for tool in ["darkscope", *[t for t in tools if t != "darkscope"]]:
                if tool in slow and args.subset_hosts and hosts != args.subset_hosts:
                    continue
                if tool not in tools and tool != "darkscope":
                    continue
                result = run(tool, data, names_path, Path(folder) / f"{tool}.json", args)
                if base is None:
                    base = result
                same = "yes" if result["rules"] == base["rules"] else (
                    f"no ({len(result['rules'] - base['rules'])} extra, "
                    f"{len(base['rules'] - result['rules'])} missing)")
                print(f"| {tool} | {result['seconds']:.1f} | {result['peak'] / 1e9:.2f} | "
                      f"{len(result['rules']):,} | {same} | "
                      f"{result['seconds'] / base['seconds']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
