import hashlib
import re

import numpy as np
import pytest

from darkscope.errors import InputFormatError, UsageError
from darkscope.ppml import datasets


def test_shipped_files_match_their_attributed_checksums():
    sources = (datasets.data_dir() / "SOURCES.md").read_text()
    assert "CC BY 4.0" in sources
    listed = dict(re.findall(r"\| `([a-z_]+\.csv)` \|.*\| `([0-9a-f]{64})` \|", sources))
    assert len(listed) == 5
    for name, digest in listed.items():
        assert hashlib.sha256((datasets.data_dir() / name).read_bytes()).hexdigest() == digest


@pytest.mark.parametrize(("name", "train", "test", "features"),
                         [("glass", 149, 65, 9), ("satellite", 4435, 2000, 36),
                          ("shuttle", 43500, 14500, 9), ("digits", 1258, 539, 64)])
def test_dataset_sizes(name, train, test, features):
    data = datasets.load(name)
    assert data.X_train.shape == (train, features)
    assert len(data.y_test) == test


def test_holdout_is_seeded_and_stratified():
    a, b = datasets.load("glass", seed=1), datasets.load("glass", seed=1)
    assert np.array_equal(a.y_test, b.y_test)
    assert not np.array_equal(datasets.load("glass", seed=2).X_test, a.X_test)
    assert set(np.unique(a.y_test)) == set(np.unique(a.y_train))


def test_split_among_parties_is_a_stratified_partition():
    labels = datasets.load("shuttle").y_train
    shares = datasets.split_among_parties(labels, 5, seed=3)
    joined = np.sort(np.concatenate(shares))
    assert np.array_equal(joined, np.arange(len(labels)))
    counts = [np.sum(labels[s] == 1) for s in shares]
    assert max(counts) - min(counts) <= 1


def test_unknown_dataset_and_bad_csv(tmp_path):
    with pytest.raises(UsageError, match="unknown dataset"):
        datasets.load("iris")
    bad = tmp_path / "x.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(InputFormatError, match="no column 'label'"):
        datasets.read_labelled_csv(bad)
