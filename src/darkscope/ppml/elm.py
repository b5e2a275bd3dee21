"""Extreme Learning Machine whose training reduces to two sums over rows.

With a random hidden layer ``H = g(X W + b)`` fixed by a seed, the output weights solve
``(HᵀH + I/C) β = HᵀT``. ``HᵀH`` and ``HᵀT`` are sums over rows, so data held by several
organizations (or arriving in batches) contributes by adding its own sums: that is what makes
the encrypted multi-party protocol and ``partial_fit`` possible. The sums are kept as exact
fixed-point integers (:mod:`darkscope.ppml.encoding`), so a model solved from decrypted totals is
bit-for-bit the model solved from the same sums in the clear.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.linalg
from sklearn.base import BaseEstimator, ClassifierMixin

from darkscope import __version__
from darkscope.errors import DarkscopeError, InputFormatError
from darkscope.io import atomic_path
from darkscope.ppml.encoding import FixedPoint, exact_cross, exact_gram

ACTIVATIONS = ("sigmoid", "tanh")
MODEL_FORMAT = "darkscope-ppml-elm/1"


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

    def weights(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        weights = rng.uniform(-1.0, 1.0, size=(self.n_features, self.n_hidden))
        bias = rng.uniform(-1.0, 1.0, size=self.n_hidden)
        return weights, bias

    def transform(self, features: np.ndarray) -> np.ndarray:
        """Hidden outputs in [-1, 1]: inputs scaled to [-1, 1] by the agreed ranges, clipped."""
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != self.n_features:
            raise DarkscopeError(f"expected {self.n_features} features per row, "
                                 f"got shape {features.shape}")
        low = np.asarray(self.feature_low)
        span = np.asarray(self.feature_high) - low
        span[span <= 0] = 1.0
        scaled = np.clip(2.0 * (features - low) / span - 1.0, -1.0, 1.0)
        weights, bias = self.weights()
        z = scaled @ weights + bias
        if self.activation == "sigmoid":
            return 0.5 * (1.0 + np.tanh(0.5 * z))
        return np.tanh(z)


def one_hot(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """0/1 target matrix; labels outside ``classes`` are an error, not a silent zero row."""
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


class ELM(ClassifierMixin, BaseEstimator):
    """Extreme Learning Machine classifier (one-hot targets, ridge output layer).

    ``feature_low``/``feature_high`` are the input ranges that map features to [-1, 1]; when
    not given, ``fit`` (or the first ``partial_fit``) takes them from its data. In a multi-party
    round they are part of the agreed round configuration instead.
    """

    def __init__(self, n_hidden: int = 100, activation: str = "sigmoid", C: float = 1.0,
                 random_state: int = 0, scale_bits: int = 20,
                 feature_low: np.ndarray | None = None,
                 feature_high: np.ndarray | None = None) -> None:
        self.n_hidden = n_hidden
        self.activation = activation
        self.C = C
        self.random_state = random_state
        self.scale_bits = scale_bits
        self.feature_low = feature_low
        self.feature_high = feature_high

    def _init_layer(self, features: np.ndarray) -> None:
        low = self.feature_low if self.feature_low is not None else features.min(axis=0)
        high = self.feature_high if self.feature_high is not None else features.max(axis=0)
        self.layer_ = HiddenLayer(
            n_features=features.shape[1], n_hidden=int(self.n_hidden),
            activation=self.activation, seed=int(self.random_state),
            feature_low=tuple(float(v) for v in low), feature_high=tuple(float(v) for v in high))
        self.encoding_ = FixedPoint(int(self.scale_bits))
        self.n_features_in_ = features.shape[1]
        self.gram_ = np.zeros((self.n_hidden, self.n_hidden), dtype=np.int64)

    def fit(self, X: np.ndarray, y: np.ndarray) -> ELM:
        features = np.asarray(X, dtype=np.float64)
        self._init_layer(features)
        self.classes_ = np.unique(y)
        self.cross_ = np.zeros((self.n_hidden, len(self.classes_)), dtype=np.int64)
        self.n_rows_ = 0
        return self._accumulate(features, np.asarray(y))

    def partial_fit(self, X: np.ndarray, y: np.ndarray,
                    classes: np.ndarray | None = None) -> ELM:
        """Add one batch's ``HᵀH`` and ``HᵀT`` to the running sums and re-solve β."""
        features = np.asarray(X, dtype=np.float64)
        if not hasattr(self, "layer_"):
            if classes is None:
                raise DarkscopeError("the first partial_fit call needs classes=")
            self._init_layer(features)
            self.classes_ = np.unique(classes)
            self.cross_ = np.zeros((self.n_hidden, len(self.classes_)), dtype=np.int64)
            self.n_rows_ = 0
        return self._accumulate(features, np.asarray(y))

    def _accumulate(self, features: np.ndarray, labels: np.ndarray) -> ELM:
        gram, cross = local_sums(self.layer_, self.encoding_, features, labels, self.classes_)
        self.gram_ += gram
        self.cross_ += cross
        self.n_rows_ += len(features)
        self.beta_ = solve_output_weights(self.gram_, self.cross_, self.encoding_, self.C)
        return self

    def fit_sums(self, layer: HiddenLayer, gram: np.ndarray, cross: np.ndarray,
                 classes: np.ndarray) -> ELM:
        """Solve β from sums computed elsewhere (the decrypted aggregate of a round)."""
        self.layer_ = layer
        self.encoding_ = FixedPoint(int(self.scale_bits))
        self.n_features_in_ = layer.n_features
        self.classes_ = np.asarray(classes)
        self.gram_, self.cross_ = gram, cross
        self.beta_ = solve_output_weights(gram, cross, self.encoding_, self.C)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return self.layer_.transform(X) @ self.beta_

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]

    def to_bytes(self) -> bytes:
        """β and everything needed to rebuild the hidden layer, as an ``.npz`` file's bytes."""
        meta = {"format": MODEL_FORMAT, "darkscope": __version__, "C": float(self.C),
                "scale_bits": int(self.scale_bits), "layer": asdict(self.layer_),
                "classes": self.classes_.tolist()}
        buffer = io.BytesIO()
        np.savez(buffer, beta=self.beta_, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
        return buffer.getvalue()

    def save(self, path: str | Path, overwrite: bool = True) -> Path:
        with atomic_path(path, overwrite) as tmp:
            tmp.write_bytes(self.to_bytes())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> ELM:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise InputFormatError(path, f"cannot read: {exc.strerror}") from exc
        return cls.from_bytes(data, str(path))

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "model") -> ELM:
        try:
            with np.load(io.BytesIO(data)) as arrays:
                beta = arrays["beta"]
                meta = json.loads(bytes(arrays["meta"]).decode())
            layer_fields = dict(meta["layer"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputFormatError(source, f"not a darkscope ELM model ({exc})") from exc
        if meta.get("format") != MODEL_FORMAT:
            raise InputFormatError(source, f"model format {meta.get('format')!r}, "
                                           f"expected {MODEL_FORMAT!r}")
        layer_fields["feature_low"] = tuple(layer_fields["feature_low"])
        layer_fields["feature_high"] = tuple(layer_fields["feature_high"])
        layer = HiddenLayer(**layer_fields)
        model = cls(n_hidden=layer.n_hidden, activation=layer.activation, C=meta["C"],
                    random_state=layer.seed, scale_bits=meta["scale_bits"])
        model.layer_ = layer
        model.encoding_ = FixedPoint(meta["scale_bits"])
        model.n_features_in_ = layer.n_features
        model.classes_ = np.asarray(meta["classes"])
        model.beta_ = beta
        if beta.shape != (layer.n_hidden, len(model.classes_)):
            raise InputFormatError(source, f"β has shape {beta.shape}, expected "
                                           f"{(layer.n_hidden, len(model.classes_))}")
        return model
