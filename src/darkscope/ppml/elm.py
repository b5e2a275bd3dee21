"""Extreme Learning Machine classifier whose training reduces to two sums over rows.

Because ``HᵀH`` and ``HᵀT`` add up over rows, ``partial_fit`` and the encrypted multi-party
protocol both just add sums (see :mod:`darkscope.ppml.hidden`).
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from darkscope import __version__
from darkscope.errors import DarkscopeError, InputFormatError
from darkscope.io import atomic_path
from darkscope.ppml.encoding import FixedPoint
from darkscope.ppml.hidden import (
    HiddenLayer,
    local_sums,
    require_finite,
    solve_output_weights,
)

MODEL_FORMAT = "darkscope-ppml-elm/1"


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
        require_finite(features)
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
        elif not hasattr(self, "gram_"):
            raise DarkscopeError("this model was loaded from a file, which holds β but not the "
                                 "sums HᵀH and HᵀT; partial_fit can only continue a model "
                                 "fitted (or fit_sums-solved) in this process")
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise DarkscopeError(f"partial_fit got classes={np.unique(classes).tolist()}, but "
                                 f"the model was started with {self.classes_.tolist()}")
        return self._accumulate(features, np.asarray(y))

    def _accumulate(self, features: np.ndarray, labels: np.ndarray) -> ELM:
        # int64 sums: refuse before adding rows that could overflow them.
        self.encoding_.check_capacity(self.n_rows_ + len(features), None, "ELM sums")
        gram, cross = local_sums(self.layer_, self.encoding_, features, labels, self.classes_)
        self.gram_ += gram
        self.cross_ += cross
        self.n_rows_ += len(features)
        self.beta_ = solve_output_weights(self.gram_, self.cross_, self.encoding_, self.C)
        return self

    def fit_sums(self, layer: HiddenLayer, gram: np.ndarray, cross: np.ndarray,
                 classes: np.ndarray, n_rows: int) -> ELM:
        """Solve β from sums computed elsewhere (the decrypted aggregate of a round).

        ``n_rows`` bounds the rows behind the sums (a round's ``total_rows_bound``), so that a
        later ``partial_fit`` keeps the int64 overflow check.
        """
        classes = np.asarray(classes)
        if gram.shape != (layer.n_hidden, layer.n_hidden) or \
                cross.shape != (layer.n_hidden, len(classes)):
            raise DarkscopeError(f"sums of shapes {gram.shape} and {cross.shape} do not fit "
                                 f"L={layer.n_hidden} and {len(classes)} classes")
        self.layer_ = layer
        self.encoding_ = FixedPoint(int(self.scale_bits))
        self.n_features_in_ = layer.n_features
        self.classes_ = classes
        self.gram_ = np.array(gram, dtype=np.int64)
        self.cross_ = np.array(cross, dtype=np.int64)
        self.n_rows_ = int(n_rows)
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
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputFormatError(source, f"not a darkscope ELM model ({exc})") from exc
        if meta.get("format") != MODEL_FORMAT:
            raise InputFormatError(source, f"model format {meta.get('format')!r}, "
                                           f"expected {MODEL_FORMAT!r}")
        try:
            layer = HiddenLayer.from_json(meta["layer"])
        except (KeyError, TypeError, ValueError, DarkscopeError) as exc:
            raise InputFormatError(source, f"bad hidden-layer definition ({exc})") from exc
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
