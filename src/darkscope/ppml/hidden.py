"""The random hidden layer and the per-party sums, kept free of scikit-learn for fast start-up.

With a random hidden layer ``H = g(X W + b)`` fixed by a seed, the ELM output weights solve
``(HᵀH + I/C) β = HᵀT``. ``HᵀH`` and ``HᵀT`` are sums over rows, so data held by several
organizations (or arriving in batches) contributes by adding its own sums. The sums are exact
fixed-point integers (:mod:`darkscope.ppml.encoding`), so β solved from decrypted totals is
bit-for-bit β solved from the same sums in the clear.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import scipy.linalg

from darkscope.errors import DarkscopeError
from darkscope.ppml.encoding import FixedPoint, exact_cross, exact_gram

ACTIVATIONS = ("sigmoid", "tanh")


@dataclass(frozen=True)
class HiddenLayer:
    """The random hidden layer every party must share: fixed by seed, size and input ranges."""

    n_features: int
    n_hidden: int
    activation: str
    seed: int
    feature_low: tuple[float, ...]
    feature_high: tuple[float, ...]

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise DarkscopeError(f"activation must be one of {ACTIVATIONS}, "
                                 f"got {self.activation!r}")
        if self.n_hidden < 1:
            raise DarkscopeError(f"n_hidden must be at least 1, got {self.n_hidden}")
        if not len(self.feature_low) == len(self.feature_high) == self.n_features:
            raise DarkscopeError(f"feature ranges must have {self.n_features} entries")
        ranges = np.asarray([self.feature_low, self.feature_high], dtype=np.float64)
        if not np.isfinite(ranges).all():
            bad = sorted(set(np.flatnonzero(~np.isfinite(ranges).all(axis=0)).tolist()))
            raise DarkscopeError(f"feature ranges must be finite numbers; features {bad[:10]} "
                                 "have NaN or infinite low/high")

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> HiddenLayer:
        """Inverse of ``dataclasses.asdict`` (JSON turns the range tuples into lists)."""
        fields = dict(raw)
        fields["feature_low"] = tuple(float(v) for v in fields["feature_low"])
        fields["feature_high"] = tuple(float(v) for v in fields["feature_high"])
        return cls(**fields)

    def weights(self) -> tuple[np.ndarray, np.ndarray]:
        """``W, b ~ U(-1, 1)`` from the seed, drawn once per layer object (read-only)."""
        return self._weights

    @cached_property
    def _weights(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        weights = rng.uniform(-1.0, 1.0, size=(self.n_features, self.n_hidden))
        bias = rng.uniform(-1.0, 1.0, size=self.n_hidden)
        weights.flags.writeable = False
        bias.flags.writeable = False
        return weights, bias

    def sha256(self) -> str:
        """Digest of ``W`` and ``b`` as float64 little-endian bytes.

        numpy does not promise the same random stream across versions, so parties compare this
        with the round's digest instead of trusting that the seed gives everyone the same layer.
        """
        weights, bias = self.weights()
        digest = hashlib.sha256(f"{weights.shape}".encode())
        digest.update(np.ascontiguousarray(weights, dtype="<f8").tobytes())
        digest.update(np.ascontiguousarray(bias, dtype="<f8").tobytes())
        return digest.hexdigest()

    def transform(self, features: np.ndarray) -> np.ndarray:
        """Hidden outputs in [-1, 1]: inputs scaled to [-1, 1] by the agreed ranges, clipped."""
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != self.n_features:
            raise DarkscopeError(f"expected {self.n_features} features per row, "
                                 f"got shape {features.shape}")
        require_finite(features)
        low = np.asarray(self.feature_low)
        span = np.asarray(self.feature_high) - low
        span[span <= 0] = 1.0
        scaled = np.clip(2.0 * (features - low) / span - 1.0, -1.0, 1.0)
        weights, bias = self.weights()
        z = scaled @ weights + bias
        if self.activation == "sigmoid":
            return 0.5 * (1.0 + np.tanh(0.5 * z))
        return np.tanh(z)


def require_finite(features: np.ndarray) -> None:
    """NaN or infinite inputs would silently corrupt the sums (and β): name the rows."""
    values = np.atleast_2d(features)
    finite = np.isfinite(values.reshape(values.shape[0], -1)).all(axis=1)
    if not finite.all():
        rows = np.flatnonzero(~finite)
        raise DarkscopeError(f"{len(rows)} rows have NaN or infinite features (first rows: "
                             f"{rows[:5].tolist()}); they would corrupt the sums")


def one_hot(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """0/1 target matrix; labels outside ``classes`` are an error, not a silent zero row."""
    if len(classes) > 1 and not np.all(classes[1:] > classes[:-1]):
        raise DarkscopeError(f"classes must be sorted and distinct, got {classes.tolist()}")
    index = np.searchsorted(classes, labels)
    index = np.clip(index, 0, len(classes) - 1)
    unknown = classes[index] != labels
    if unknown.any():
        raise DarkscopeError(f"labels {sorted(set(np.asarray(labels)[unknown].tolist()))[:5]} "
                             f"are not among the agreed classes {classes.tolist()}")
    targets = np.zeros((len(labels), len(classes)), dtype=np.float64)
    targets[np.arange(len(labels)), index] = 1.0
    return targets


def local_sums(layer: HiddenLayer, encoding: FixedPoint, features: np.ndarray,
               labels: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact integer ``HᵀH`` and ``HᵀT`` of one party's rows under the agreed encoding."""
    targets = one_hot(np.asarray(labels), np.asarray(classes))
    quantised = encoding.quantise(layer.transform(features))
    return exact_gram(quantised, encoding.scale_bits), exact_cross(quantised, targets)


def solve_output_weights(gram: np.ndarray, cross: np.ndarray, encoding: FixedPoint,
                         C: float) -> np.ndarray:
    """β from the integer sums: ``(HᵀH/s² + I/C) β = HᵀT/s`` by Cholesky (the matrix is SPD)."""
    scale = float(encoding.scale)
    system = gram.astype(np.float64) / (scale * scale)
    system[np.diag_indices_from(system)] += 1.0 / C
    return scipy.linalg.solve(system, cross.astype(np.float64) / scale, assume_a="pos")
