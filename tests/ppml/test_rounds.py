import numpy as np
import pytest

from darkscope.errors import DarkscopeError
from darkscope.ppml.hidden import local_sums, one_hot
from darkscope.ppml.rounds import RoundConfig, resolve_deadline
from darkscope.ppml.tokens import check_name


def _config(**changes):
    raw = {"round_id": "r", "backend": "bfv", "parties": ["a", "b"], "classes": [3, 1, 2],
           "n_hidden": 4, "activation": "sigmoid", "seed": 1, "scale_bits": 10,
           "max_rows_per_party": 100, "feature_low": [0.0, 0.0], "feature_high": [1.0, 1.0]}
    raw.update(changes)
    return RoundConfig.from_json(raw, new=True)


def test_unsorted_classes_are_sorted_so_every_party_can_encode_labels():
    config = _config()
    assert config.classes == (1, 2, 3)
    features = np.array([[0.1, 0.2], [0.5, 0.5], [0.9, 0.3]])
    _, cross = local_sums(config.layer, config.encoding, features, np.array([3, 1, 2]),
                          config.class_array)
    assert (cross != 0).all()  # every class column received its row


def test_one_hot_refuses_unsorted_classes():
    with pytest.raises(DarkscopeError, match="classes must be sorted"):
        one_hot(np.array([1, 3]), np.array([3, 1, 2]))


@pytest.mark.parametrize("name", ["alice\n", "alice\nbob", "", "-x", "a" * 65])
def test_names_with_a_trailing_newline_or_other_junk_are_refused(name):
    with pytest.raises(DarkscopeError, match="must be 1-64 letters"):
        check_name(name)
    with pytest.raises(DarkscopeError, match="must be 1-64 letters"):
        _config(round_id=name)
    with pytest.raises(DarkscopeError, match="must be 1-64 letters"):
        _config(parties=[name, "b"])


def test_published_round_carries_the_layer_digest_and_parties_check_it():
    created = _config()
    assert created.layer_sha256 == created.layer.sha256()
    assert len(created.layer_sha256) == 64
    received = RoundConfig.from_json(created.to_json())
    received.verify_layer()
    assert _config(seed=2).layer_sha256 != created.layer_sha256
    raw = created.to_json()
    del raw["layer_sha256"]
    with pytest.raises(DarkscopeError, match=r"lacks \['layer_sha256'\]"):
        RoundConfig.from_json(raw)
    with pytest.raises(DarkscopeError, match="empty layer_sha256"):
        RoundConfig.from_json({**raw, "layer_sha256": ""})
    other = RoundConfig.from_json({**raw, "layer_sha256": "0" * 64})
    with pytest.raises(DarkscopeError, match="numpy's random stream differs"):
        other.verify_layer()


def test_layer_weights_are_drawn_once_and_read_only():
    layer = _config().layer
    first, _ = layer.weights()
    assert layer.weights()[0] is first
    assert not first.flags.writeable


def test_quorum_defaults_to_every_party_and_old_rounds_still_load():
    raw = _config().to_json()
    del raw["quorum"], raw["deadline"]  # a round published before both existed
    config = RoundConfig.from_json(raw)
    assert (config.quorum, config.deadline, config.closed()) == (2, "", False)


@pytest.mark.parametrize(("changes", "message"), [
    ({"quorum": 1}, "must lie between 2"),
    ({"quorum": 4}, "must lie between 2"),
    ({"parties": ["a", "b", "c"], "quorum": 2}, "needs a deadline"),
    ({"deadline": "tomorrow"}, "not a date"),
])
def test_bad_quorum_or_deadline_is_refused(changes, message):
    with pytest.raises(DarkscopeError, match=message):
        _config(**changes)


def test_deadline_from_a_duration_or_an_instant_and_closing():
    now = 1_800_000_000.0
    assert resolve_deadline("30m", now) == "2027-01-15T08:30:00Z"
    assert resolve_deadline("2027-01-15T09:00+01:00", now) == "2027-01-15T08:00:00Z"
    with pytest.raises(DarkscopeError, match="ISO 8601 time"):
        resolve_deadline("soon", now)
    config = _config(parties=["a", "b", "c"], quorum=2, deadline="2027-01-15T08:30:00Z")
    assert not config.closed(now + 1799) and config.closed(now + 1800)
