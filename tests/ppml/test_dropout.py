"""A round survives a party that dies: five party processes, one killed mid-round, and the
deadline and quorum release the sum over the four that uploaded (real aggregator process on
127.0.0.1, real BFV, every role a `darkscope ppml` process)."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from darkscope.errors import DarkscopeError
from darkscope.ppml import ELM, datasets, roles, tokens
from darkscope.ppml.bench import start_aggregator, stop
from darkscope.ppml.client import AggregatorClient, AggregatorError
from darkscope.ppml.rounds import RoundConfig, resolve_deadline
from darkscope.ppml.wire import Message

pytestmark = pytest.mark.network

PARTIES = [f"party{k}" for k in range(1, 6)]
VICTIM = PARTIES[-1]
# long enough for four party processes to start, encrypt and upload on a loaded 2-core machine
DEADLINE_SECONDS = 20


def _ppml(*args: str) -> list[str]:
    return [sys.executable, "-m", "darkscope.cli", "ppml", *args]


def _party(work, url, round_id, name, fingerprint) -> list[str]:
    return _ppml("party", "--server", url, "--token-file", str(work / "tokens" / f"{name}.token"),
                 "--round", round_id, "--data", str(work / f"{name}.csv"), "--expect-key",
                 fingerprint, "--json", "--no-progress")


@pytest.fixture(scope="module")
def dropout(tmp_path_factory):
    work = tmp_path_factory.mktemp("dropout")
    tokens.issue(PARTIES, work / "tokens")
    keys = roles.make_keys(work / "keys", "bfv", poly_modulus_degree=4096)
    data = datasets.load("glass", seed=0)
    split = datasets.split_among_parties(data.y_train, len(PARTIES), seed=0)
    shares = {n: (data.X_train[r], data.y_train[r]) for n, r in zip(PARTIES, split, strict=True)}
    for name, (features, labels) in shares.items():
        datasets.write_labelled_csv(work / f"{name}.csv", features, labels)
    process, url = start_aggregator(work, work / "tokens" / tokens.HASHES_FILE)
    low, high = data.X_train.min(axis=0), data.X_train.max(axis=0)
    deadline = resolve_deadline(f"{DEADLINE_SECONDS}s")
    base = {"backend": "bfv", "parties": PARTIES, "classes": sorted(set(data.y_train.tolist())),
            "n_hidden": 20, "activation": "sigmoid", "seed": 11, "scale_bits": 16,
            "max_rows_per_party": 100, "feature_low": low.tolist(),
            "feature_high": high.tolist(), "deadline": deadline}
    keyholder = AggregatorClient(url, tokens.read_token(work / "tokens" / "keyholder.token"))
    # "quorum" tolerates the victim; "strict" (every party, the default) must fail instead
    configs = {round_id: RoundConfig.from_json({**base, "round_id": round_id, **extra}, new=True)
               for round_id, extra in (("quorum", {"quorum": 4}), ("strict", {}))}
    for config in configs.values():
        roles.open_round(keyholder, work / "keys", config)

    fingerprint = keys["public_key_sha256"]
    victim = subprocess.Popen(_party(work, url, "quorum", VICTIM, fingerprint),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.kill(victim.pid, signal.SIGSTOP)  # alive and holding its slot, but it never uploads
    running = [subprocess.Popen(_party(work, url, "quorum", n, fingerprint),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for n in PARTIES[:-1]]
    others = [(p.communicate(timeout=120), p.returncode) for p in running]
    before_deadline = keyholder.status("quorum")
    try:
        keyholder.aggregate("quorum")
        early = None
    except AggregatorError as exc:
        early = exc
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    yield {"work": work, "url": url, "shares": shares, "configs": configs, "others": others,
           "before": before_deadline, "early": early, "keyholder": keyholder, "victim": victim,
           "fingerprint": fingerprint, "test": (data.X_test, data.y_test), "low": low,
           "high": high}
    keyholder.close()
    stop(process)


def test_before_the_deadline_the_round_waits_for_the_killed_party(dropout):
    assert all(code == 0 for _, code in dropout["others"]), \
        [err[-300:] for (_, err), _ in dropout["others"]]
    assert dropout["victim"].returncode == -signal.SIGKILL
    before = dropout["before"]
    assert before["contributed"] == PARTIES[:-1] and before["waiting"] == [VICTIM]
    assert (before["closed"], before["quorum"]) == (False, 4)
    assert dropout["early"] is not None and dropout["early"].status == 409
    assert "until its deadline" in str(dropout["early"])


def test_after_the_deadline_the_quorum_gives_the_model_of_the_four(dropout, tmp_path):
    work = dropout["work"]
    done = subprocess.run(
        _ppml("solve", "--server", dropout["url"], "--token-file",
              str(work / "tokens" / "keyholder.token"), "--round", "quorum", "--keys",
              str(work / "keys"), "--C", "100", "--wait", str(DEADLINE_SECONDS + 60),
              "-o", str(tmp_path / "model.npz"), "--json"),
        capture_output=True, text=True, check=False, timeout=DEADLINE_SECONDS + 120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["parties_in_round"] == PARTIES[:-1]
    four = [dropout["shares"][n] for n in PARTIES[:-1]]
    plain = ELM(n_hidden=20, C=100.0, random_state=11, scale_bits=16,
                feature_low=dropout["low"], feature_high=dropout["high"]).fit(
        np.concatenate([f for f, _ in four]), np.concatenate([y for _, y in four]))
    X_test, y_test = dropout["test"]
    private = ELM.load(tmp_path / "model.npz")
    assert np.array_equal(private.predict(X_test), plain.predict(X_test))
    assert np.mean(private.predict(X_test) == y_test) > 0.45  # 6 classes, chance below 0.36

    # the killed party comes back too late: a clear refusal, nothing encrypted
    late = subprocess.run(_party(work, dropout["url"], "quorum", VICTIM, dropout["fingerprint"]),
                          capture_output=True, text=True, check=False, timeout=120)
    assert late.returncode != 0
    assert "closed at its deadline" in late.stderr and "Traceback" not in late.stderr
    assert dropout["keyholder"].status("quorum")["contributed"] == PARTIES[:-1]


def test_a_round_short_of_its_quorum_fails_instead_of_blocking(dropout):
    while not dropout["configs"]["strict"].closed():
        time.sleep(0.2)
    work = dropout["work"]
    started = time.monotonic()
    done = subprocess.run(
        _ppml("solve", "--server", dropout["url"], "--token-file",
              str(work / "tokens" / "keyholder.token"), "--round", "strict", "--keys",
              str(work / "keys"), "--wait", "600"),
        capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode != 0 and time.monotonic() - started < 60
    assert "failed: 0 of its 5 parties contributed by the deadline" in done.stderr
    assert "Traceback" not in done.stderr


def test_key_holder_refuses_a_partial_sum_before_the_deadline(dropout):
    """An aggregator that releases four parties' sum early is caught by the key holder's clock."""
    config = RoundConfig.from_json({**dropout["configs"]["quorum"].to_json(),
                                    "round_id": "early", "deadline": resolve_deadline("1h")})
    keys = roles.load_keys(dropout["work"] / "keys")
    early = Message({"kind": "aggregate", "round": "early", "parties": PARTIES[:-1],
                     "n_values": config.n_values}, [])
    with pytest.raises(DarkscopeError, match="leaves out parties before"):
        roles.decrypt_aggregate(keys, config, early)
    early.header["parties"] = PARTIES[:3]
    with pytest.raises(DarkscopeError, match="fewer than its quorum 4"):
        roles.decrypt_aggregate(keys, config, early)
