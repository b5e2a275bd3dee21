"""The local engine against ``--engine spark`` on the same packets, in one run.

    python -u benchmarks/spark.py [--hours 18] [--scale 1.0] [--workdir DIR] [--skip-cluster]

Data: ``simulate --scenario mirai-2016`` for ``--hours`` at ``--scale`` (the defaults give
20,151,582 packets) as a packet table, and a model trained on 2 h of the day before. Measured,
each as the command a user runs (process start included), with the verdicts counted on every
side so the runs are known to agree:

- ``backscatter detect``, ``rules mine`` and ``backscatter train --update`` on the local
  engine, and with ``--engine spark --master local[2]``;
- the same on a standalone Spark cluster started here (a master and one, then two workers of
  one core each: a cluster in miniature, on this machine's two cores), for the scaling from
  one worker to two.

Absolute times on a shared two-core machine are noise; the ratios in one run are the result.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DARKSCOPE = str(Path(sys.executable).parent / "darkscope")
TELESCOPE = "198.51.0.0/16"


def run(*args: str) -> tuple[float, str]:
    started = time.perf_counter()
    # the executors run this interpreter, which has darkscope (a real cluster's run the
    # PYSPARK_PYTHON its operator installed darkscope into: docs/spark.md)
    done = subprocess.run([DARKSCOPE, *args, "--no-progress"], check=True,
                          capture_output=True, text=True,
                          env={**os.environ, "PYSPARK_PYTHON": sys.executable})
    return time.perf_counter() - started, done.stdout


def _counts(stdout: str) -> str:
    """The verdict counts a detect run printed (the part between the telescope and queue)."""
    return stdout.split(": ", 1)[1].split(" (")[0]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spark_class() -> str:
    import pyspark

    return str(Path(pyspark.__file__).parent / "bin" / "spark-class")


def _daemon(*args: str) -> subprocess.Popen:
    return subprocess.Popen([_spark_class(), *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _wait_workers(ui: int, wanted: int) -> None:
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            alive = httpx.get(f"http://127.0.0.1:{ui}/json/", timeout=5).json()["aliveworkers"]
            if alive >= wanted:
                return
        except (httpx.TransportError, ValueError, KeyError):
            pass
        time.sleep(1)
    raise RuntimeError(f"the standalone cluster did not reach {wanted} worker(s)")


def make_data(work: Path, hours: int, scale: float) -> tuple[Path, Path]:
    table, capture = work / "packets.parquet", work / "day.pcap"
    run("simulate", "--scenario", "mirai-2016", "--start", "2016-09-01T00:00Z", "--duration",
        f"{hours}h", "--scale", str(scale), "--seed", "1", "-o", str(capture), "--table",
        str(table))
    capture.unlink()
    train = work / "train.pcap"
    run("simulate", "--scenario", "mirai-2016", "--start", "2016-08-31T00:00Z", "--duration",
        "2h", "--scale", str(scale), "--seed", "2", "-o", str(train))
    run("backscatter", "train", str(train), "-o", str(work / "model"), "--store",
        str(work / "train.db"), "--telescope", TELESCOPE)
    train.unlink()
    return table, work / "model"


def measure(work: Path, table: Path, model: Path, label: str, engine: tuple[str, ...]
            ) -> tuple[float, float, float, str]:
    tag = label.replace(" ", "-").replace("[", "").replace("]", "")
    detect_s, out = run("backscatter", "detect", str(table), "--model", str(model),
                        "--telescope", TELESCOPE, "--no-store", "-o",
                        str(work / f"verdicts-{tag}.parquet"), *engine)
    rules_s, _ = run("rules", "mine", str(table), "--min-hosts", "1000", "-o",
                     str(work / f"rules-{tag}.parquet"), *engine)
    # an online update of the model over the whole input (the local engine: one step per
    # 4 M packets; Spark: one step, fitted on the driver)
    train_s, _ = run("backscatter", "train", str(table), "--update", str(model), "--telescope",
                     TELESCOPE, "--store", str(work / f"train-{tag}.db"), "-o",
                     str(work / f"model-{tag}"), *engine)
    print(f"  {label:<28} detect {detect_s:7.1f} s   rules mine {rules_s:7.1f} s   "
          f"train {train_s:7.1f} s   ({_counts(out)})", flush=True)
    return detect_s, rules_s, train_s, _counts(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=int, default=18)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--skip-cluster", action="store_true",
                        help="Leave out the standalone cluster (local engine and local[2]).")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="spark-bench-", dir=args.workdir))
    daemons: list[subprocess.Popen] = []
    try:
        began = time.perf_counter()
        table, model = make_data(work, args.hours, args.scale)
        import pyarrow.parquet as pq

        packets = pq.ParquetFile(table).metadata.num_rows
        print(f"{packets:,} packets ({args.hours} h of mirai-2016 at scale {args.scale}), "
              f"made in {time.perf_counter() - began:.0f} s", flush=True)
        results = {"local engine": measure(work, table, model, "local engine", ())}
        # the driver holds the host-windows train fits (docs/spark.md: Training)
        spark = ("--engine", "spark", "--conf", "spark.sql.shuffle.partitions=8", "--conf",
                 "spark.driver.memory=6g", "--conf", "spark.driver.maxResultSize=4g")
        results["spark local[2]"] = measure(work, table, model, "spark local[2]",
                                            (*spark, "--master", "local[2]"))
        if not args.skip_cluster:
            port, ui = _port(), _port()
            master = f"spark://127.0.0.1:{port}"
            daemons.append(_daemon("org.apache.spark.deploy.master.Master", "--host",
                                   "127.0.0.1", "--port", str(port), "--webui-port", str(ui)))
            for workers in (1, 2):
                daemons.append(_daemon("org.apache.spark.deploy.worker.Worker", master,
                                       "--cores", "1", "--memory", "3g", "--webui-port",
                                       str(_port())))
                _wait_workers(ui, workers)
                label = f"standalone, {workers} worker{'s' if workers > 1 else ''}"
                results[label] = measure(work, table, model, label, (
                    *spark, "--master", master, "--conf", "spark.executor.memory=2g"))
        local = results["local engine"]
        assert len({r[3] for r in results.values()}) == 1, "the engines disagree"
        print("\nagainst the local engine (detect, rules mine, train):")
        for label, (detect_s, rules_s, train_s, _) in results.items():
            print(f"  {label:<28} {local[0] / detect_s:5.2f}x   {local[1] / rules_s:5.2f}x   "
                  f"{local[2] / train_s:5.2f}x")
        if "standalone, 2 workers" in results:
            one, two = results["standalone, 1 worker"], results["standalone, 2 workers"]
            print(f"\nfrom 1 worker to 2: detect {one[0] / two[0]:.2f}x, rules mine "
                  f"{one[1] / two[1]:.2f}x, train {one[2] / two[2]:.2f}x")
    finally:
        for daemon in reversed(daemons):
            daemon.terminate()
            daemon.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
