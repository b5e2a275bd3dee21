import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits

from darkscope.errors import DarkscopeError, InputFormatError
from darkscope.ppml import ELM
from darkscope.ppml.datasets import stratified_holdout
from darkscope.ppml.encoding import CapacityError


@pytest.fixture(scope="module")
def digits():
    features, labels = load_digits(return_X_y=True)
    test = stratified_holdout(labels, 0.3, seed=0)
    return features[~test], labels[~test], features[test], labels[test]


def test_elm_learns_digits_on_held_out_data(digits):
    X_train, y_train, X_test, y_test = digits
    model = ELM(n_hidden=200, C=1.0, random_state=0).fit(X_train, y_train)
    assert np.mean(model.predict(X_test) == y_test) > 0.93
    assert model.decision_function(X_test).shape == (len(X_test), 10)
    assert model.classes_.tolist() == list(range(10))


def test_partial_fit_in_batches_equals_fit(digits):
    X_train, y_train, X_test, _ = digits
    low, high = X_train.min(axis=0), X_train.max(axis=0)
    whole = ELM(n_hidden=80, feature_low=low, feature_high=high).fit(X_train, y_train)
    online = ELM(n_hidden=80, feature_low=low, feature_high=high)
    for start in range(0, len(X_train), 250):
        online.partial_fit(X_train[start:start + 250], y_train[start:start + 250],
                           classes=np.arange(10))
    assert np.array_equal(online.gram_, whole.gram_)
    assert np.array_equal(online.cross_, whole.cross_)
    assert np.array_equal(online.predict(X_test), whole.predict(X_test))


def test_first_partial_fit_needs_classes(digits):
    X_train, y_train, _, _ = digits
    with pytest.raises(DarkscopeError, match="classes="):
        ELM(n_hidden=10).partial_fit(X_train[:10], y_train[:10])


def test_unknown_label_in_a_batch_is_an_error(digits):
    X_train, y_train, _, _ = digits
    model = ELM(n_hidden=10).partial_fit(X_train[:50], y_train[:50], classes=np.arange(10))
    with pytest.raises(DarkscopeError, match=r"\[42\] are not among the agreed classes"):
        model.partial_fit(X_train[:2], np.array([1, 42]))


def test_sklearn_clone_and_params():
    model = ELM(n_hidden=33, activation="tanh", C=5.0, random_state=7)
    copy = clone(model)
    assert copy.get_params()["n_hidden"] == 33
    assert copy.get_params()["activation"] == "tanh"


def test_save_load_roundtrip(tmp_path, digits):
    X_train, y_train, X_test, _ = digits
    model = ELM(n_hidden=40, activation="tanh", random_state=3).fit(X_train, y_train)
    model.save(tmp_path / "m.npz")
    loaded = ELM.load(tmp_path / "m.npz")
    assert np.array_equal(loaded.decision_function(X_test), model.decision_function(X_test))


def test_load_rejects_other_files(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a model")
    with pytest.raises(InputFormatError, match="not a darkscope ELM model"):
        ELM.load(bad)


def test_fit_and_partial_fit_refuse_rows_that_could_overflow_int64():
    """2^14 rows at scale 2^24 reach 2^62; one more row could overflow the int64 sums."""
    rng = np.random.default_rng(0)
    features = rng.uniform(size=(2**14 + 1, 2))
    labels = rng.integers(0, 2, size=2**14 + 1)
    with pytest.raises(CapacityError, match=r"16385 rows .* int64 headroom"):
        ELM(n_hidden=2, scale_bits=24).fit(features, labels)
    model = ELM(n_hidden=2, scale_bits=24).partial_fit(features[:-1], labels[:-1],
                                                       classes=[0, 1])
    before = model.gram_.copy()
    with pytest.raises(CapacityError, match="16385 rows"):
        model.partial_fit(features[-1:], labels[-1:])
    assert np.array_equal(model.gram_, before)
    assert model.n_rows_ == 2**14


def test_partial_fit_continues_after_fit_sums(digits):
    X_train, y_train, X_test, _ = digits
    low, high = X_train.min(axis=0), X_train.max(axis=0)
    whole = ELM(n_hidden=30, feature_low=low, feature_high=high).fit(X_train, y_train)
    first = ELM(n_hidden=30, feature_low=low, feature_high=high).fit(X_train[:500],
                                                                     y_train[:500])
    resumed = ELM(n_hidden=30).fit_sums(first.layer_, first.gram_, first.cross_,
                                        first.classes_, n_rows=500)
    resumed.partial_fit(X_train[500:], y_train[500:])
    assert np.array_equal(resumed.gram_, whole.gram_)
    assert np.array_equal(resumed.predict(X_test), whole.predict(X_test))
    assert not np.shares_memory(resumed.gram_, first.gram_)


def test_partial_fit_after_load_or_with_other_classes_is_a_clear_error(tmp_path, digits):
    X_train, y_train, _, _ = digits
    model = ELM(n_hidden=10).partial_fit(X_train[:100], y_train[:100], classes=np.arange(10))
    with pytest.raises(DarkscopeError, match=r"classes=\[0, 1\], but the model was started"):
        model.partial_fit(X_train[:10], y_train[:10] % 2, classes=[0, 1])
    model.partial_fit(X_train[:10], y_train[:10], classes=np.arange(10)[::-1])  # same set
    model.save(tmp_path / "m.npz")
    with pytest.raises(DarkscopeError, match="loaded from a file"):
        ELM.load(tmp_path / "m.npz").partial_fit(X_train[:10], y_train[:10])


def test_non_finite_features_or_ranges_are_refused(digits):
    X_train, y_train, _, _ = digits
    features = X_train[:50].copy()
    features[7, 3] = np.nan
    features[9, 0] = np.inf
    with pytest.raises(DarkscopeError, match=r"2 rows have NaN or infinite .*\[7, 9\]"):
        ELM(n_hidden=10).fit(features, y_train[:50])
    model = ELM(n_hidden=10).fit(X_train[:50], y_train[:50])
    with pytest.raises(DarkscopeError, match=r"first rows: \[7, 9\]"):
        model.predict(features)
    high = X_train.max(axis=0).astype(float)
    high[5] = np.inf
    with pytest.raises(DarkscopeError, match=r"features \[5\] have NaN or infinite"):
        ELM(n_hidden=10, feature_low=X_train.min(axis=0), feature_high=high).fit(
            X_train[:50], y_train[:50])
