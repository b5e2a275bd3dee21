"""The three roles against a real aggregator process on 127.0.0.1 (real HTTP, real BFV)."""

import socket
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from darkscope.errors import DarkscopeError
from darkscope.ppml import ELM, datasets, roles, tokens
from darkscope.ppml.bench import start_aggregator, stop
from darkscope.ppml.client import AggregatorClient, AggregatorError
from darkscope.ppml.encoding import pack_sums
from darkscope.ppml.hidden import local_sums
from darkscope.ppml.rounds import RoundConfig
from darkscope.ppml.totals import Totals
from darkscope.ppml.wire import Message, decode

pytestmark = pytest.mark.network

PARTIES = ["alice", "bob", "carol"]


@dataclass
class Deployment:
    work: Path
    url: str
    process: object
    shares: dict[str, tuple[np.ndarray, np.ndarray]]
    test: tuple[np.ndarray, np.ndarray]
    low: np.ndarray
    high: np.ndarray

    def client(self, name: str) -> AggregatorClient:
        token = tokens.read_token(self.work / "tokens" / f"{name}.token")
        return AggregatorClient(self.url, token, timeout=60)

    def restart(self) -> None:
        stop(self.process)
        self.process, self.url = start_aggregator(self.work, self.tokens_file)

    @property
    def tokens_file(self) -> Path:
        return self.work / "tokens" / tokens.HASHES_FILE

    def config(self, round_id: str, n_hidden: int = 20) -> RoundConfig:
        classes = np.unique(np.concatenate([y for _, y in self.shares.values()]))
        return RoundConfig(round_id=round_id, backend="bfv", parties=tuple(PARTIES),
                           classes=tuple(int(c) for c in classes), n_hidden=n_hidden,
                           activation="sigmoid", seed=11, scale_bits=16,
                           max_rows_per_party=100, feature_low=tuple(self.low),
                           feature_high=tuple(self.high))

    def open(self, round_id: str) -> RoundConfig:
        config = self.config(round_id)
        with self.client(tokens.KEYHOLDER) as keyholder:
            roles.open_round(keyholder, self.work / "keys", config)
        return config

    @property
    def fingerprint(self) -> str:
        published = decode((self.work / "keys" / roles.PUBLIC_FILE).read_bytes())
        return roles.key_fingerprint(published.chunks[0])

    def contribute(self, round_id: str, name: str) -> dict:
        features, labels = self.shares[name]
        with self.client(name) as client:
            return roles.contribute(client, round_id, name, features, labels, self.fingerprint)

    def plant_round(self, config: RoundConfig, public_key: bytes) -> None:
        """Write a round straight into the aggregator's state: what a malicious aggregator
        (or an old version) could serve to the parties."""
        folder = self.work / "aggregator-state" / "rounds" / config.round_id
        folder.mkdir(parents=True, exist_ok=True)
        message = Message({"kind": "round", "config": config.to_json()}, [public_key])
        (folder / "round.dsp").write_bytes(message.encode())

    def body(self, config: RoundConfig, name: str) -> Message:
        features, labels = self.shares[name]
        keys = roles.load_keys(self.work / "keys" / roles.PUBLIC_FILE)
        gram, cross = local_sums(config.layer, config.encoding, features, labels,
                                 config.class_array)
        return Message({"kind": "contribution", "round": config.round_id, "party": name,
                        "n_values": config.n_values}, keys.encrypt(pack_sums(gram, cross)))


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    work = tmp_path_factory.mktemp("ppml")
    tokens.issue(PARTIES, work / "tokens")
    roles.make_keys(work / "keys", "bfv", poly_modulus_degree=4096)
    data = datasets.load("glass", seed=0)
    split = datasets.split_among_parties(data.y_train, len(PARTIES), seed=0)
    shares = {n: (data.X_train[r], data.y_train[r]) for n, r in zip(PARTIES, split, strict=True)}
    process, url = start_aggregator(work, work / "tokens" / tokens.HASHES_FILE)
    deployment = Deployment(work, url, process, shares, (data.X_test, data.y_test),
                            data.X_train.min(axis=0), data.X_train.max(axis=0))
    yield deployment
    stop(deployment.process)


def test_party_without_valid_token_is_refused(deployment):
    deployment.open("auth")
    with AggregatorClient(deployment.url, "not-a-token") as stranger, \
            pytest.raises(AggregatorError, match="invalid bearer token") as refused:
        stranger.status("auth")
    assert refused.value.status == 401
    answer = httpx.post(f"{deployment.url}/v1/rounds/auth/contributions", content=b"x")
    assert answer.status_code == 401
    # A valid party token does not make a party the key holder.
    with deployment.client("alice") as alice, \
            pytest.raises(AggregatorError, match="only the key holder") as forbidden:
        alice.open_round(deployment.config("by-alice"), b"")
    assert forbidden.value.status == 403


def test_second_upload_is_refused_even_after_restart(deployment):
    config = deployment.open("once")
    report = deployment.contribute("once", "alice")
    assert report["bytes_sent"] > 0
    # the party learns it before encrypting anything...
    with pytest.raises(DarkscopeError, match=r"already contributed.*nothing was encrypted"):
        deployment.contribute("once", "alice")
    # ...and the aggregator refuses a second body in any case
    body = deployment.body(config, "alice").encode()
    with deployment.client("alice") as alice, \
            pytest.raises(AggregatorError, match="already contributed") as second:
        alice.contribute("once", body)
    assert second.value.status == 409
    deployment.restart()
    with deployment.client("alice") as alice:
        assert alice.status("once")["contributed"] == ["alice"]
        with pytest.raises(AggregatorError, match="already contributed"):
            alice.contribute("once", body)


def test_tampered_or_truncated_contributions_are_rejected(deployment):
    config = deployment.open("tamper")
    good = deployment.body(config, "bob")
    encoded = good.encode()
    flipped = bytearray(encoded)
    flipped[-100] ^= 0x40
    forged = Message(good.header, [b"\x07" * 500, *good.chunks[1:]])
    short = Message(good.header, good.chunks[:-1])
    cases = [(encoded[:-1000], "truncated"), (bytes(flipped), "SHA-256"),
             (forged.encode(), "chunk 0: not a valid BFV ciphertext"),
             (short.encode(), "ciphertext chunks")]
    with deployment.client("bob") as bob:
        for body, reason in cases:
            with pytest.raises(AggregatorError, match=reason) as rejected:
                bob.contribute("tamper", body)
            assert rejected.value.status == 400
        assert bob.status("tamper")["contributed"] == []
        assert bob.contribute("tamper", encoded)["party"] == "bob"  # rejects used no slot


def test_aggregate_is_released_only_when_every_party_is_in(deployment):
    deployment.open("partial")
    deployment.contribute("partial", "alice")
    with deployment.client(tokens.KEYHOLDER) as keyholder, \
            pytest.raises(AggregatorError, match=r"still waits for \['bob', 'carol'\]"):
        keyholder.aggregate("partial")
    with deployment.client("alice") as alice, \
            pytest.raises(AggregatorError, match="only the key holder"):
        alice.aggregate("partial")
    keyholder_token = tokens.read_token(deployment.work / "tokens" / "keyholder.token")
    single = httpx.get(f"{deployment.url}/v1/rounds/partial/contributions/alice",
                       headers={"Authorization": f"Bearer {keyholder_token}"})
    assert single.status_code in (404, 405)  # no endpoint hands out one party's ciphertexts


def test_full_round_decrypts_exact_aggregate_and_matches_plaintext_elm(deployment):
    config = deployment.open("full")
    for name in PARTIES:
        deployment.contribute("full", name)
    keys = roles.load_keys(deployment.work / "keys")
    with deployment.client(tokens.KEYHOLDER) as keyholder:
        gram, cross = roles.decrypt_aggregate(keys, config, keyholder.aggregate("full"))
    own = [local_sums(config.layer, config.encoding, *deployment.shares[n], config.class_array)
           for n in PARTIES]
    assert np.array_equal(gram, sum(g for g, _ in own))
    assert np.array_equal(cross, sum(c for _, c in own))
    assert not any(np.array_equal(gram, g) for g, _ in own)  # the total, not one party's

    with deployment.client(tokens.KEYHOLDER) as keyholder:
        model, report = roles.solve(keyholder, "full", deployment.work / "keys", C=100.0)
    assert report["seconds"] > 0
    features = np.concatenate([deployment.shares[n][0] for n in PARTIES])
    labels = np.concatenate([deployment.shares[n][1] for n in PARTIES])
    plain = ELM(n_hidden=20, C=100.0, random_state=11, scale_bits=16,
                feature_low=deployment.low, feature_high=deployment.high).fit(features, labels)
    X_test, y_test = deployment.test
    assert np.array_equal(plain.predict(X_test), model.predict(X_test))
    assert np.mean(model.predict(X_test) == y_test) > 0.45  # 6 classes: chance is below 0.36
    with deployment.client("carol") as carol:
        published = ELM.from_bytes(carol.model("full"))
    assert np.array_equal(published.predict(X_test), model.predict(X_test))


def test_key_holder_refuses_an_aggregate_that_is_not_the_total(deployment):
    config = deployment.config("fake")
    keys = roles.load_keys(deployment.work / "keys")
    forged = deployment.body(config, "alice")
    forged.header.update({"kind": "aggregate", "parties": ["alice"]})
    with pytest.raises(DarkscopeError, match="fewer than its quorum"):
        roles.decrypt_aggregate(keys, config, forged)


def test_aggregator_refuses_and_never_holds_the_secret_key(deployment):
    secret = roles.load_keys(deployment.work / "keys")
    with deployment.client(tokens.KEYHOLDER) as keyholder, \
            pytest.raises(AggregatorError, match="holds the secret key"):
        keyholder.open_round(deployment.config("leak"), secret.secret_bytes())
    deployment.open("scan")
    state = deployment.work / "aggregator-state"
    files = [p for p in state.rglob("*") if p.is_file()]
    assert any(p.name == "round.dsp" for p in files)
    for path in files:
        if path.suffix != ".dsp":
            continue
        message = decode(path.read_bytes(), str(path))
        assert message.header.get("kind") != "secret-key"
        if path.name == "round.dsp":
            from darkscope.ppml import backends

            context = backends.load(message.header["config"]["backend"], message.chunks[0])
            assert not context.has_secret_key()
    # What the aggregator keeps of the key is byte for byte the published public key.
    public = decode((deployment.work / "keys" / roles.PUBLIC_FILE).read_bytes()).chunks[0]
    stored = decode((state / "rounds" / "scan" / "round.dsp").read_bytes()).chunks[0]
    assert stored == public
    assert stored != secret.secret_bytes()


def test_round_naming_a_party_without_token_is_refused(deployment):
    config = deployment.config("strangers")
    raw = config.to_json()
    raw.update(parties=["alice", "mallory"], quorum=2)
    with deployment.client(tokens.KEYHOLDER) as keyholder, \
            pytest.raises(AggregatorError, match=r"parties without a token here: \['mallory'\]"):
        roles.open_round(keyholder, deployment.work / "keys", RoundConfig.from_json(raw))


def test_party_with_more_rows_than_agreed_fails_before_encrypting(deployment):
    deployment.open("toomany")
    features, labels = deployment.shares["alice"]
    many = np.repeat(features, 3, axis=0)[:101]
    with deployment.client("alice") as alice, \
            pytest.raises(DarkscopeError, match="101 rows exceed the round's max_rows_per_party"):
        roles.contribute(alice, "toomany", "alice", many, np.repeat(labels, 3)[:101],
                         deployment.fingerprint)
    with deployment.client("alice") as alice:
        assert alice.status("toomany")["contributed"] == []


def test_online_rounds_accumulate_to_the_pooled_model(deployment, tmp_path):
    """Two rounds over the same hidden layer: totals add up to the ELM on all rows."""
    halves = {n: (len(y) // 2) for n, (_, y) in deployment.shares.items()}
    totals = tmp_path / "totals.npz"
    for index, round_id in enumerate(["online-1", "online-2"]):
        deployment.open(round_id)
        for name in PARTIES:
            features, labels = deployment.shares[name]
            part = slice(0, halves[name]) if index == 0 else slice(halves[name], None)
            with deployment.client(name) as client:
                roles.contribute(client, round_id, name, features[part], labels[part],
                                 deployment.fingerprint)
        with deployment.client(tokens.KEYHOLDER) as keyholder:
            model, report = roles.solve(keyholder, round_id, deployment.work / "keys", C=100.0,
                                        totals_path=totals)
    assert report["rounds_in_model"] == ["online-1", "online-2"]
    assert stat.S_IMODE(totals.stat().st_mode) == 0o600
    features = np.concatenate([deployment.shares[n][0] for n in PARTIES])
    labels = np.concatenate([deployment.shares[n][1] for n in PARTIES])
    plain = ELM(n_hidden=20, C=100.0, random_state=11, scale_bits=16,
                feature_low=deployment.low, feature_high=deployment.high).fit(features, labels)
    assert np.array_equal(model.gram_, plain.gram_)
    X_test, _ = deployment.test
    assert np.array_equal(model.predict(X_test), plain.predict(X_test))
    # The same round cannot be counted twice, and a round with another layer is refused.
    accumulated = Totals.load(totals)
    with pytest.raises(DarkscopeError, match="already in the totals"):
        accumulated.add(deployment.config("online-2"), model.gram_, model.cross_)
    with pytest.raises(DarkscopeError, match="another hidden layer"):
        accumulated.add(deployment.config("other", n_hidden=21), model.gram_, model.cross_)


def test_party_pinning_the_key_refuses_a_substituted_key(deployment, tmp_path):
    """An aggregator that swaps in its own public key could decrypt; a pinned party refuses."""
    deployment.open("pinned")
    published = (deployment.work / "keys" / roles.PUBLIC_FILE).read_bytes()
    fingerprint = roles.key_fingerprint(decode(published).chunks[0])
    mallory_keys = tmp_path / "mallory"
    header = roles.make_keys(mallory_keys, "bfv", poly_modulus_degree=4096)
    assert header["public_key_sha256"] != fingerprint
    features, labels = deployment.shares["bob"]
    with deployment.client("bob") as bob, \
            pytest.raises(DarkscopeError, match="not the key holder's"):
        roles.contribute(bob, "pinned", "bob", features, labels,
                         expect_key=header["public_key_sha256"])
    with deployment.client("bob") as bob:
        assert bob.status("pinned")["contributed"] == []
        report = roles.contribute(bob, "pinned", "bob", features, labels, expect_key=fingerprint)
    assert report["party"] == "bob"


def test_chunk_with_too_few_values_or_wrong_n_values_is_refused(deployment):
    """A well-formed ciphertext of 3 values where 330 are expected must not be accepted."""
    config = deployment.open("short-chunk")
    good = deployment.body(config, "alice")
    keys = roles.load_keys(deployment.work / "keys" / roles.PUBLIC_FILE)
    short = Message(good.header, keys.encrypt(np.arange(3)))
    lying = Message({**good.header, "n_values": 3}, short.chunks)
    with deployment.client("alice") as alice:
        with pytest.raises(AggregatorError, match="chunk 0: holds 3 values, expected 330") as bad:
            alice.contribute("short-chunk", short.encode())
        assert bad.value.status == 400
        with pytest.raises(AggregatorError, match=r"announces n_values 3, .* needs 330") as bad:
            alice.contribute("short-chunk", lying.encode())
        assert bad.value.status == 400
        assert alice.status("short-chunk")["contributed"] == []


def test_a_failing_sum_is_a_clear_error_not_a_bare_500(deployment):
    """A stored contribution that cannot be added (e.g. kept from an older aggregator)."""
    config = deployment.open("bad-sum")
    for name in PARTIES[:2]:
        deployment.contribute("bad-sum", name)
    keys = roles.load_keys(deployment.work / "keys" / roles.PUBLIC_FILE)
    short = Message(deployment.body(config, "carol").header, keys.encrypt(np.arange(3)))
    folder = deployment.work / "aggregator-state" / "rounds" / "bad-sum" / "contributions"
    (folder / "carol.dsp").write_bytes(short.encode())
    with deployment.client(tokens.KEYHOLDER) as keyholder, \
            pytest.raises(AggregatorError, match="adding the contributions of round 'bad-sum' "
                                                 "failed") as failed:
        keyholder.aggregate("bad-sum")
    assert failed.value.status == 500


def test_every_role_refuses_parameters_below_128_bit(deployment, tmp_path):
    weak_dir = tmp_path / "weak"
    roles.make_keys(weak_dir, "paillier", paillier_bits=2048, allow_insecure=True)
    weak_public = decode((weak_dir / roles.PUBLIC_FILE).read_bytes()).chunks[0]
    config = RoundConfig.from_json({**deployment.config("weak").to_json(),
                                    "backend": "paillier"})
    with deployment.client(tokens.KEYHOLDER) as keyholder:
        with pytest.raises(DarkscopeError, match="112-bit security, below the required 128"):
            roles.open_round(keyholder, weak_dir, config)
        with pytest.raises(AggregatorError, match="112-bit security, below") as refused:
            keyholder.open_round(config, weak_public)
        assert refused.value.status == 400
    deployment.plant_round(config, weak_public)
    features, labels = deployment.shares["alice"]
    with deployment.client("alice") as alice:
        with pytest.raises(DarkscopeError, match="112-bit security, below the required 128"):
            roles.contribute(alice, "weak", "alice", features, labels,
                             expect_key=roles.key_fingerprint(weak_public))
        assert alice.status("weak")["contributed"] == []


def test_party_refuses_to_encrypt_without_a_pin_unless_told_so(deployment):
    deployment.open("unpinned")
    features, labels = deployment.shares["carol"]
    with deployment.client("carol") as carol:
        with pytest.raises(DarkscopeError, match="without the key holder's public key "
                                                 "fingerprint"):
            roles.contribute(carol, "unpinned", "carol", features, labels, None)
        assert carol.status("unpinned")["contributed"] == []
        report = roles.contribute(carol, "unpinned", "carol", features, labels, None,
                                  insecure_no_pin=True)
    assert report["party"] == "carol"


def test_solve_with_totals_can_be_rerun_after_an_output_error(deployment, tmp_path):
    """An existing -o file used to fail *after* the totals were saved: re-runs then failed
    forever with 'already in the totals'."""
    deployment.open("rerun")
    for name in PARTIES:
        deployment.contribute("rerun", name)
    totals, taken = tmp_path / "totals.npz", tmp_path / "taken.npz"
    taken.write_bytes(b"someone else's file")
    with deployment.client(tokens.KEYHOLDER) as keyholder:
        with pytest.raises(DarkscopeError, match="exists; pass --overwrite"):
            roles.solve(keyholder, "rerun", deployment.work / "keys", C=100.0, output=taken,
                        totals_path=totals)
        assert not totals.exists()
        assert taken.read_bytes() == b"someone else's file"
        _, report = roles.solve(keyholder, "rerun", deployment.work / "keys", C=100.0,
                                output=tmp_path / "model.npz", totals_path=totals)
    assert report["rounds_in_model"] == ["rerun"]
    assert Totals.load(totals).rounds == ["rerun"]
    published = ELM.load(tmp_path / "model.npz")
    assert published.classes_.tolist() == list(deployment.config("x").classes)


def test_key_holder_checks_the_aggregate_against_its_own_round_record(deployment):
    """An aggregator that serves a shrunken party list could pass two parties' sums (or one)
    off as the total; the key holder compares with the config it published, kept locally."""
    config = deployment.open("shrunk")
    assert roles.load_round_record(deployment.work / "keys", "shrunk") == config
    fewer = RoundConfig.from_json({**config.to_json(), "parties": ["alice", "bob"],
                                   "quorum": 2})
    (deployment.work / "aggregator-state" / "rounds" / "shrunk" / "round.dsp").unlink()
    public = decode((deployment.work / "keys" / roles.PUBLIC_FILE).read_bytes()).chunks[0]
    deployment.plant_round(fewer, public)
    deployment.restart()
    for name in ["alice", "bob"]:
        deployment.contribute("shrunk", name)
    with deployment.client(tokens.KEYHOLDER) as keyholder:
        assert keyholder.aggregate("shrunk").header["parties"] == ["alice", "bob"]
        with pytest.raises(DarkscopeError, match="fewer than its quorum"):
            roles.solve(keyholder, "shrunk", deployment.work / "keys", C=100.0)
        with pytest.raises(DarkscopeError, match="no record of round 'elsewhere'"):
            roles.solve(keyholder, "elsewhere", deployment.work / "keys", C=100.0)


def _raw_post(url: str, path: str, token: str, length: int, body: bytes = b"") -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    conn = socket.create_connection((host, int(port)), timeout=5)
    conn.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
                 f"Content-Length: {length}\r\n\r\n".encode() + body)
    return conn


def test_oversized_upload_is_refused_from_its_headers(deployment):
    """The aggregator answers 413 without waiting for (or reading) a 1 GB body."""
    deployment.open("huge")
    token = tokens.read_token(deployment.work / "tokens" / "alice.token")
    with _raw_post(deployment.url, "/v1/rounds/huge/contributions", token, 10**9) as conn:
        answer = conn.recv(65536)
    assert answer.split(b"\r\n")[0].endswith(b"413 Request Entity Too Large")
    assert b"contribution of 1000000000 bytes exceeds the" in answer
    with deployment.client("alice") as alice:
        assert alice.status("huge")["contributed"] == []


def test_one_upload_in_flight_per_party(deployment):
    config = deployment.open("inflight")
    body = deployment.body(config, "bob").encode()
    token = tokens.read_token(deployment.work / "tokens" / "bob.token")
    path = "/v1/rounds/inflight/contributions"
    with _raw_post(deployment.url, path, token, len(body), body[:1000]) as slow:
        time.sleep(0.5)  # the first upload is now being received
        with deployment.client("bob") as bob, \
                pytest.raises(AggregatorError, match="already in progress") as busy:
            bob.contribute("inflight", body)
        assert busy.value.status == 409
        slow.sendall(body[1000:])
        assert slow.recv(65536).split(b"\r\n")[0].endswith(b"201 Created")
    with deployment.client("bob") as bob:
        assert bob.status("inflight")["contributed"] == ["bob"]


def test_party_refuses_a_round_whose_hidden_layer_digest_differs(deployment):
    """What a party with another numpy random stream (or a tampered config) would see."""
    config = deployment.config("layer-digest")
    tampered = RoundConfig.from_json({**config.to_json(), "layer_sha256": "ab" * 32})
    public = decode((deployment.work / "keys" / roles.PUBLIC_FILE).read_bytes()).chunks[0]
    deployment.plant_round(tampered, public)
    features, labels = deployment.shares["alice"]
    with deployment.client("alice") as alice:
        with pytest.raises(DarkscopeError, match="the round's is abab"):
            roles.contribute(alice, "layer-digest", "alice", features, labels,
                             deployment.fingerprint)
        assert alice.status("layer-digest")["contributed"] == []
