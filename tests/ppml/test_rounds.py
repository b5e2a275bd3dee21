import numpy as np
import pytest

from darkscope.errors import DarkscopeError
from darkscope.ppml.hidden import local_sums, one_hot
from darkscope.ppml.rounds import RoundConfig
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
