"""The PP-ELM paper's four datasets, shipped with darkscope, and splits among parties.

Glass, Satellite (Statlog Landsat) and Shuttle are UCI data under CC BY 4.0 (see
``darkscope/data/uci/SOURCES.md``); Digits ships with scikit-learn. Satellite and Shuttle keep
UCI's official train/test split. Glass and Digits have none: a seeded, stratified 30% hold-out
is used for testing.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from darkscope.errors import InputFormatError, UsageError

DATASETS = ("glass", "digits", "satellite", "shuttle")
# Regularisation per dataset, from the plaintext reference runs in the project notes.
DEFAULT_C = {"glass": 1e2, "digits": 1.0, "satellite": 1e4, "shuttle": 1e6}
HOLDOUT = 0.3


@dataclass(frozen=True)
class Dataset:
    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    split: str


def data_dir() -> Path:
    return Path(str(resources.files("darkscope") / "data" / "uci"))


def read_labelled_csv(path: str | Path, label: str = "label") -> tuple[np.ndarray, np.ndarray]:
    """Features (float64) and integer labels from a CSV with a header and a label column."""
    try:
        table = pacsv.read_csv(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputFormatError(path, f"cannot read as CSV: {exc}") from exc
    if label not in table.column_names:
        raise InputFormatError(path, f"no column {label!r} (columns: {table.column_names[:12]})")
    names = [n for n in table.column_names if n != label]
    if not names or table.num_rows == 0:
        raise InputFormatError(path, "needs at least one feature column and one row")
    try:
        features = np.column_stack([table[n].to_numpy().astype(np.float64) for n in names])
        labels = table[label].to_numpy().astype(np.int64)
    except (ValueError, TypeError, pa.ArrowInvalid) as exc:
        raise InputFormatError(path, f"non-numeric or missing values ({exc})") from exc
    if not np.isfinite(features).all():
        row = int(np.argwhere(~np.isfinite(features))[0][0])
        raise InputFormatError(path, f"row {row + 1}: missing or non-finite feature value")
    return features, labels


def write_labelled_csv(path: str | Path, features: np.ndarray, labels: np.ndarray) -> None:
    columns = {f"f{i}": features[:, i] for i in range(features.shape[1])}
    columns["label"] = labels
    pacsv.write_csv(pa.table(columns), path)


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean test mask holding out ``fraction`` of every class (at least one row each)."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), dtype=bool)
    for cls in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == cls))
        test[rows[:max(1, round(fraction * len(rows)))]] = True
    return test


def load(name: str, seed: int = 0) -> Dataset:
    if name not in DATASETS:
        raise UsageError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if name == "digits":
        from sklearn.datasets import load_digits

        features, labels = load_digits(return_X_y=True)
        features = features.astype(np.float64)
    elif name == "glass":
        features, labels = read_labelled_csv(data_dir() / "glass.csv")
    else:
        X_train, y_train = read_labelled_csv(data_dir() / f"{name}_train.csv")
        X_test, y_test = read_labelled_csv(data_dir() / f"{name}_test.csv")
        return Dataset(name, X_train, y_train, X_test, y_test, "UCI's official train/test split")
    test = stratified_holdout(labels, HOLDOUT, seed)
    return Dataset(name, features[~test], labels[~test], features[test], labels[test],
                   f"seeded stratified {HOLDOUT:.0%} hold-out (seed {seed}); no official split")


def split_among_parties(labels: np.ndarray, parties: int, seed: int) -> list[np.ndarray]:
    """Row indices per party: shuffled, then dealt round-robin within each class (stratified)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    order = order[np.argsort(labels[order], kind="stable")]
    owner = np.empty(len(labels), dtype=np.int64)
    owner[order] = np.arange(len(labels)) % parties
    return [np.flatnonzero(owner == k) for k in range(parties)]
