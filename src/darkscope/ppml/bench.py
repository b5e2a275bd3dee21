"""End-to-end benchmark: every role in its own process, talking HTTP over loopback.

The private model is compared with a plaintext ELM trained centrally on the same fixed-point
quantised sums (same seed, ranges, encoding and C): its predictions must be identical. The
float (unquantised) ELM's accuracy is reported too, to show what quantisation costs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from darkscope.errors import DarkscopeError
from darkscope.ppml import datasets, tokens
from darkscope.ppml.elm import ELM

_START_TIMEOUT = 60.0


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "darkscope.cli", "ppml", *args]


def _run_json(args: list[str], env: dict[str, str], timeout: float = 1800) -> dict[str, Any]:
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout,
                          check=False)
    if done.returncode != 0:
        raise DarkscopeError(f"{' '.join(args[3:5])} failed: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def start_aggregator(work: Path, tokens_file: Path,
                     env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """Start ``ppml serve`` on a free loopback port; return the process and its URL."""
    ready = work / "aggregator.ready"
    ready.unlink(missing_ok=True)
    log = open(work / "aggregator.log", "ab")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(
        _command("serve", "--state", str(work / "aggregator-state"), "--tokens",
                 str(tokens_file), "--port", "0", "--ready-file", str(ready)),
        stdout=log, stderr=log, env=env)
    log.close()
    deadline = time.monotonic() + _START_TIMEOUT
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise DarkscopeError("the aggregator did not start: "
                                 + (work / "aggregator.log").read_text()[-500:])
        time.sleep(0.05)
    return process, json.loads(ready.read_text())["url"]


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_bench(dataset: str, n_parties: int, n_hidden: int, backend: str = "bfv", seed: int = 0,
              C: float | None = None, activation: str = "sigmoid", poly_degree: int = 8192,
              round_id: str = "bench") -> dict[str, Any]:
    data = datasets.load(dataset, seed)
    C = datasets.DEFAULT_C[dataset] if C is None else C
    names = [f"party{k + 1}" for k in range(n_parties)]
    shares = datasets.split_among_parties(data.y_train, n_parties, seed)
    low, high = data.X_train.min(axis=0), data.X_train.max(axis=0)
    threads = str(max(1, (os.cpu_count() or 1) // n_parties))
    party_env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads}
    with tempfile.TemporaryDirectory(prefix="darkscope-ppml-") as tmp:
        work = Path(tmp)
        for name, rows in zip(names, shares, strict=True):
            datasets.write_labelled_csv(work / f"{name}.csv", data.X_train[rows],
                                        data.y_train[rows])
        config = {"round_id": round_id, "parties": names,
                  "classes": np.unique(data.y_train).tolist(), "n_hidden": n_hidden,
                  "activation": activation, "seed": seed, "scale_bits": "auto",
                  "max_rows_per_party": max(len(r) for r in shares),
                  "feature_low": low.tolist(), "feature_high": high.tolist()}
        (work / "round.json").write_text(json.dumps(config))
        tokens.issue(names, work / "tokens")
        token = {n: str(work / "tokens" / f"{n}.token") for n in [*names, tokens.KEYHOLDER]}

        started = time.perf_counter()
        keys = _run_json(_command("keys", "-o", str(work / "keys"), "--backend", backend,
                                  "--poly-degree", str(poly_degree), "--json"), dict(os.environ))
        keyed = time.perf_counter()
        aggregator, url = start_aggregator(work, work / "tokens" / tokens.HASHES_FILE)
        try:
            served = time.perf_counter()
            opened = _run_json(_command("round", "--server", url, "--token-file",
                                        token[tokens.KEYHOLDER], "--keys", str(work / "keys"),
                                        "--config", str(work / "round.json"), "--json"),
                               dict(os.environ))
            round_open = time.perf_counter()
            running = [subprocess.Popen(
                _command("party", "--server", url, "--token-file", token[name], "--round",
                         round_id, "--data", str(work / f"{name}.csv"), "--expect-key",
                         keys["public_key_sha256"], "--json"),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=party_env)
                for name in names]
            party_reports = []
            for name, process in zip(names, running, strict=True):
                out, err = process.communicate(timeout=7200)
                if process.returncode != 0:
                    raise DarkscopeError(f"party {name} failed: {err.strip()[-500:]}")
                party_reports.append(json.loads(out.strip().splitlines()[-1]))
            contributed = time.perf_counter()
            solved = _run_json(_command("solve", "--server", url, "--token-file",
                                        token[tokens.KEYHOLDER], "--round", round_id,
                                        "--keys", str(work / "keys"), "--C", repr(C),
                                        "-o", str(work / "model.npz"), "--json"),
                               dict(os.environ))
            finished = time.perf_counter()
        finally:
            stop(aggregator)
        private = ELM.load(work / "model.npz")

    plain = ELM(n_hidden=n_hidden, activation=activation, C=C, random_state=seed,
                scale_bits=int(opened["scale_bits"]), feature_low=low, feature_high=high)
    plain.fit(data.X_train, data.y_train)
    float_elm = _float_elm_accuracy(plain, data)
    predicted_private = private.predict(data.X_test)
    predicted_plain = plain.predict(data.X_test)
    return {
        "dataset": dataset, "split": data.split, "backend": backend, "parties": n_parties,
        "hidden": n_hidden, "C": C, "scale_bits": int(opened["scale_bits"]),
        "security": keys, "train_rows": len(data.y_train), "test_rows": len(data.y_test),
        "accuracy_plain": float(np.mean(predicted_plain == data.y_test)),
        "accuracy_private": float(np.mean(predicted_private == data.y_test)),
        "accuracy_float": float_elm,
        "identical_predictions": bool(np.array_equal(predicted_plain, predicted_private)),
        "identical_beta": bool(np.array_equal(plain.beta_, private.beta_)),
        "seconds_total": finished - started,
        "seconds_keys": keyed - started, "seconds_aggregator_start": served - keyed,
        "seconds_round_open": round_open - served,
        "seconds_parties_wall": contributed - round_open,
        "seconds_party_max": max(r["seconds"] for r in party_reports),
        "seconds_party_encrypt_max": max(r["seconds_encrypt"] for r in party_reports),
        "seconds_party_sums_max": max(r["seconds_sums"] for r in party_reports),
        "seconds_keyholder_solve": finished - contributed,
        "seconds_aggregate_and_fetch": solved["seconds_fetch_aggregate"],
        "seconds_decrypt": solved["seconds_decrypt"],
        "bytes_per_party": max(r["bytes_sent"] for r in party_reports),
        "party_reports": party_reports,
    }


def _float_elm_accuracy(plain: ELM, data: datasets.Dataset) -> float:
    """Accuracy of the same ELM solved from float64 (unquantised) sums."""
    import scipy.linalg

    hidden = plain.layer_.transform(data.X_train)
    targets = (data.y_train[:, None] == plain.classes_[None, :]).astype(np.float64)
    system = hidden.T @ hidden
    system[np.diag_indices_from(system)] += 1.0 / plain.C
    beta = scipy.linalg.solve(system, hidden.T @ targets, assume_a="pos")
    scores = plain.layer_.transform(data.X_test) @ beta
    return float(np.mean(plain.classes_[np.argmax(scores, axis=1)] == data.y_test))
