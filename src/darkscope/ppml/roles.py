"""What each role does in a round, as library functions the CLI and the benchmark call.

- key holder: :func:`make_keys`, :func:`open_round`, :func:`solve`
- party: :func:`contribute`
- aggregator: :mod:`darkscope.ppml.server`
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from darkscope.errors import DarkscopeError, InputFormatError
from darkscope.io import atomic_path, check_output
from darkscope.ppml import backends
from darkscope.ppml.client import AggregatorClient
from darkscope.ppml.encoding import CapacityError, pack_sums, unpack_sums
from darkscope.ppml.hidden import local_sums
from darkscope.ppml.rounds import ROUND_ID, RoundConfig
from darkscope.ppml.totals import Totals
from darkscope.ppml.wire import Message, WireFormatError, decode
from darkscope.progress import track

SECRET_FILE = "secret.key"
PUBLIC_FILE = "public.key"


def make_keys(directory: str | Path, backend: str = "bfv", poly_modulus_degree: int = 8192,
              paillier_bits: int = backends.PAILLIER_SECURE_BITS, overwrite: bool = False,
              allow_insecure: bool = False) -> dict[str, Any]:
    """Create ``secret.key`` (mode 0600, stays with the key holder) and ``public.key``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    keys = backends.generate(backend, poly_modulus_degree=poly_modulus_degree,
                             paillier_bits=paillier_bits, allow_insecure=allow_insecure)
    public = keys.public_bytes()
    header = {"backend": backend, "security": keys.security(),
              "public_key_sha256": key_fingerprint(public)}
    with atomic_path(directory / SECRET_FILE, overwrite) as tmp:
        tmp.touch(mode=0o600)
        os.chmod(tmp, 0o600)
        tmp.write_bytes(Message({**header, "kind": "secret-key"}, [keys.secret_bytes()]).encode())
    with atomic_path(directory / PUBLIC_FILE, overwrite) as tmp:
        tmp.write_bytes(Message({**header, "kind": "public-key"}, [public]).encode())
    return header


def key_fingerprint(public_key: bytes) -> str:
    """SHA-256 of the public key as published: parties pin it to detect a substituted key."""
    return hashlib.sha256(public_key).hexdigest()


def _read_key_message(path: Path) -> Message:
    try:
        return decode(path.read_bytes(), str(path))
    except OSError as exc:
        raise DarkscopeError(f"cannot read key file {path}: {exc.strerror}") from exc
    except WireFormatError as exc:
        raise InputFormatError(path, str(exc)) from exc


def load_keys(path: str | Path) -> backends.Backend:
    """A backend from ``secret.key`` or ``public.key`` (or the directory holding them)."""
    path = Path(path)
    if path.is_dir():
        path = path / SECRET_FILE
    message = _read_key_message(path)
    return backends.load(message.header["backend"], message.chunks[0])


def open_round(client: AggregatorClient, keys_dir: str | Path,
               config: RoundConfig) -> dict[str, Any]:
    """Publish the round configuration and the public key (only) through the aggregator."""
    public = _read_key_message(Path(keys_dir) / PUBLIC_FILE).chunks[0]
    keys = backends.load(config.backend, public)
    if keys.has_secret_key():
        raise DarkscopeError(f"{keys_dir}/{PUBLIC_FILE} holds a secret key; refusing to publish")
    backends.require_secure(keys, f"{keys_dir}/{PUBLIC_FILE}")
    config.verify_layer()
    config.encoding.check_capacity(config.total_rows_bound, keys.plaintext_bound,
                                   f"round {config.round_id}")
    record = _round_record(keys_dir, config.round_id)
    if record.exists() and load_round_record(keys_dir, config.round_id) != config:
        raise DarkscopeError(f"{record} already records another configuration for round "
                             f"{config.round_id!r}; use a new round id")
    answer = client.open_round(config, public)
    if not record.exists():
        record.parent.mkdir(exist_ok=True)
        with atomic_path(record) as tmp:
            tmp.write_text(config.dumps() + "\n")
    return {**answer, "public_key_sha256": key_fingerprint(public)}


def _round_record(keys_dir: str | Path, round_id: str) -> Path:
    if not ROUND_ID.fullmatch(round_id):
        raise DarkscopeError(f"bad round id {round_id!r}")
    directory = Path(keys_dir)
    if directory.is_file():
        directory = directory.parent
    return directory / "rounds" / f"{round_id}.json"


def load_round_record(keys_dir: str | Path, round_id: str) -> RoundConfig:
    """The round configuration as the key holder published it, kept beside its keys.

    The key holder checks the aggregate against this copy, not against what the aggregator
    serves: an aggregator that shrank the party list could otherwise pass one party's sums off
    as the total.
    """
    path = _round_record(keys_dir, round_id)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise DarkscopeError(f"no record of round {round_id!r} in {path.parent}: the key holder "
                             "solves only rounds it opened from this key directory") from exc
    except (OSError, ValueError) as exc:
        raise InputFormatError(path, f"not a readable round record ({exc})") from exc
    try:
        return RoundConfig.from_json(raw)
    except DarkscopeError as exc:
        raise InputFormatError(path, str(exc)) from exc


def contribute(client: AggregatorClient, round_id: str, party: str, features: np.ndarray,
               labels: np.ndarray, expect_key: str | None,
               insecure_no_pin: bool = False) -> dict[str, Any]:
    """Compute this party's ``HᵀH``/``HᵀT``, encrypt under the round's public key, upload once.

    ``expect_key`` is the key holder's public key fingerprint obtained out of band: a key
    substituted by the aggregator is refused before anything is encrypted. Without it nothing
    is encrypted, unless ``insecure_no_pin`` says the caller accepts any key.
    """
    started = time.perf_counter()
    if expect_key is None and not insecure_no_pin:
        raise DarkscopeError("refusing to encrypt without the key holder's public key "
                             "fingerprint: pass --expect-key SHA256 (from `ppml keys`, received "
                             "out of band), or --insecure-no-pin to accept any key")
    config, public_key = client.round(round_id)
    if expect_key is not None and key_fingerprint(public_key) != expect_key.strip().lower():
        raise DarkscopeError(f"round {round_id!r} carries public key "
                             f"{key_fingerprint(public_key)}, not the key holder's {expect_key}; "
                             "refusing to encrypt under it")
    keys = backends.load(config.backend, public_key)
    if keys.has_secret_key():
        raise DarkscopeError("the round's context holds a secret key: refusing to use it")
    backends.require_secure(keys, f"round {round_id!r}")
    rows = len(features)
    if rows > config.max_rows_per_party:
        raise CapacityError(f"{rows} rows exceed the round's max_rows_per_party "
                            f"{config.max_rows_per_party}; the sums could overflow")
    config.encoding.check_capacity(config.total_rows_bound, keys.plaintext_bound,
                                   f"round {round_id}")
    config.verify_layer()
    if config.closed():
        raise DarkscopeError(f"round {round_id!r} closed at its deadline {config.deadline}; "
                             "nothing was encrypted or sent")
    if party not in config.parties:
        raise DarkscopeError(f"{party!r} is not a party of round {round_id!r} (its parties: "
                             f"{', '.join(config.parties)}); nothing was encrypted")
    if party in client.status(round_id)["contributed"]:  # before minutes of encryption
        raise DarkscopeError(f"{party!r} already contributed to round {round_id!r}; a party "
                             "contributes once per round (nothing was encrypted)")
    fetched = time.perf_counter()
    gram, cross = local_sums(config.layer, config.encoding, features, labels, config.class_array)
    summed = time.perf_counter()
    values = pack_sums(gram, cross)
    chunks: list[bytes] = []
    step = keys.slots * 8
    with track("encrypting", total=len(values), unit="values") as bar:
        for start in range(0, len(values), step):
            chunks += keys.encrypt(values[start:start + step])
            bar.advance(len(values[start:start + step]))
    body = Message({"kind": "contribution", "round": round_id, "party": party,
                    "n_values": config.n_values}, chunks).encode()
    encrypted = time.perf_counter()
    client.contribute(round_id, body)
    done = time.perf_counter()
    return {"party": party, "rows": rows, "bytes_sent": len(body),
            "seconds_fetch_round": fetched - started, "seconds_sums": summed - fetched,
            "seconds_encrypt": encrypted - summed, "seconds_upload": done - encrypted,
            "seconds": done - started}


# How far the aggregator's clock may run ahead of the key holder's: a sum over fewer than all
# parties released earlier than that before the deadline is refused.
CLOCK_SKEW_SECONDS = 60.0


def decrypt_aggregate(keys: backends.Backend, config: RoundConfig,
                      aggregate: Message) -> tuple[np.ndarray, np.ndarray]:
    """Decrypt the summed ciphertexts into the integer ``HᵀH`` and ``HᵀT`` of the parties in it.

    Only a sum over every party, or over at least the quorum once the deadline has passed (by
    this machine's clock), is decrypted: anything smaller would tell the key holder more about
    fewer parties than the round promised them.
    """
    header = aggregate.header
    parties = header.get("parties", [])
    if header.get("kind") != "aggregate" or header.get("round") != config.round_id or \
            header.get("n_values") != config.n_values or not isinstance(parties, list) or \
            len(set(parties)) != len(parties) or not set(parties) <= set(config.parties):
        raise DarkscopeError("the aggregator's answer is not a sum over the round's parties; "
                             "refusing to decrypt it")
    if len(parties) < len(config.parties):
        if len(parties) < config.quorum:
            raise DarkscopeError(f"the aggregate covers {len(parties)} of round "
                                 f"{config.round_id!r}'s {len(config.parties)} parties, fewer "
                                 f"than its quorum {config.quorum}; refusing to decrypt it")
        if not config.closed(time.time() + CLOCK_SKEW_SECONDS):
            raise DarkscopeError(f"the aggregate leaves out parties before round "
                                 f"{config.round_id!r}'s deadline {config.deadline}; refusing "
                                 "to decrypt it")
    values = keys.decrypt(aggregate.chunks, config.n_values)
    return unpack_sums(values, config.n_hidden, len(config.classes))


def solve(client: AggregatorClient, round_id: str, keys_dir: str | Path, C: float,
          output: str | Path | None = None, wait_seconds: float = 0.0,
          overwrite: bool = False,
          totals_path: str | Path | None = None) -> tuple[Any, dict[str, Any]]:
    """Fetch the aggregate, decrypt it, solve β, save and publish the model.

    The output path is checked before any work and the totals are saved last, so a failed run
    can simply be repeated.

    With ``totals_path`` the aggregate is added to the key holder's totals of earlier rounds
    (created if absent) and β is solved from all of them: the online form across rounds.
    """
    started = time.perf_counter()
    if output is not None:
        check_output(output, overwrite)
    keys = load_keys(keys_dir)
    if not keys.has_secret_key():
        raise DarkscopeError(f"{keys_dir} holds no secret key; solve needs the key holder's "
                             f"{SECRET_FILE}")
    config = load_round_record(keys_dir, round_id)
    aggregate = client.aggregate(round_id, wait_seconds)
    fetched = time.perf_counter()
    gram, cross = decrypt_aggregate(keys, config, aggregate)
    rounds, rows_bound = [round_id], config.total_rows_bound
    if totals_path is not None:
        totals = Totals.load(totals_path) if Path(totals_path).exists() else Totals.empty(config)
        totals.add(config, gram, cross)
        gram, cross, rounds = totals.gram, totals.cross, totals.rounds
        rows_bound = totals.rows_bound
    decrypted = time.perf_counter()
    from darkscope.ppml.elm import ELM

    model = ELM(n_hidden=config.n_hidden, activation=config.activation, C=C,
                random_state=config.seed, scale_bits=config.scale_bits)
    model.fit_sums(config.layer, gram, cross, config.class_array, rows_bound)
    solved = time.perf_counter()
    model_bytes = model.to_bytes()
    if output is not None:
        with atomic_path(output, overwrite) as tmp:
            tmp.write_bytes(model_bytes)
    client.publish_model(round_id, model_bytes)
    if totals_path is not None:
        # Last: a failure before this point leaves the totals as they were, so a re-run works.
        totals.save(totals_path)
    done = time.perf_counter()
    return model, {"round": round_id, "rounds_in_model": rounds,
                   "parties_in_round": list(aggregate.header["parties"]),
                   "bytes_received": sum(len(c) for c in aggregate.chunks),
                   "seconds_fetch_aggregate": fetched - started,
                   "seconds_decrypt": decrypted - fetched, "seconds_solve": solved - decrypted,
                   "seconds_publish": done - solved, "seconds": done - started}


EVALUATION_FORMAT = "darkscope-ppml-evaluation/1"


def evaluate(model_bytes: bytes, features: np.ndarray, labels: np.ndarray, round_id: str,
             party: str) -> dict[str, Any]:
    """A party's check of a published model on its own held-out rows: accuracy and per-class
    recall, and nothing about the rows themselves (counts and rates only), so the report can
    be shared with the other organisations and shown on the dashboard."""
    from darkscope.ppml.elm import ELM  # scikit-learn: only for the roles that need a model

    model = ELM.from_bytes(model_bytes, f"round {round_id} model")
    if features.shape[1] != model.n_features_in_:
        raise DarkscopeError(f"the evaluation data has {features.shape[1]} features, the "
                             f"model {model.n_features_in_}")
    predicted = model.predict(features)
    per_class = {}
    for cls in np.unique(np.r_[labels, model.classes_]):
        mine = labels == cls
        per_class[str(int(cls))] = {
            "rows": int(mine.sum()),
            "recall": float(np.mean(predicted[mine] == cls)) if mine.any() else None}
    return {"format": EVALUATION_FORMAT, "round": round_id, "party": party,
            "rows": int(labels.size), "accuracy": float(np.mean(predicted == labels)),
            "per_class": per_class,
            "model_sha256": hashlib.sha256(model_bytes).hexdigest(),
            "evaluated_at": datetime.now(UTC).isoformat(timespec="seconds").replace(
                "+00:00", "Z")}
