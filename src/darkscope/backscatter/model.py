"""The learned part of the detector: a one-class gate and a calibrated L2-SVM, both online.

``log1p`` then standardisation (fitted on the first batch and then frozen, so that later
updates do not shift the space under the linear models); the gate is an RBF one-class SVM
approximated by ``Nystroem`` features + ``SGDOneClassSVM`` (incrementally trainable); the
classifier is ``SGDClassifier(loss="squared_hinge", average=True)`` (an L2-SVM; averaging makes
single passes stable) whose margins are calibrated into probabilities on held-out rows. Its step
is constant and small (:data:`STEP`): the squared hinge's gradient grows with the error, and
scikit-learn's default "optimal" schedule starts near 0.45, so on rows with squared norms of 20
and more every early step overshoots; the weights then reach 1e13, where a margin is the
rounding noise of a sum of cancelling terms and the same window gets another confidence in
another batch (BLAS blocks differ). With averaging, a constant step also keeps online updates
as strong in month six as on day one.
A bounded replay buffer of earlier labelled rows is mixed into every update so that the model
does not forget patterns that stop appearing for a while.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.kernel_approximation import Nystroem
from sklearn.linear_model import SGDClassifier, SGDOneClassSVM
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from darkscope.errors import DarkscopeError

REVIEW, NOT_DDOS, DDOS = -1, 0, 1
STEP = 0.01  # held-out F1 unchanged against the "optimal" schedule; weights ~1 instead of 1e13


class BackscatterModel(ClassifierMixin, BaseEstimator):
    """Gate + calibrated L2-SVM over host-window features (labels: 1 = DDoS, 0 = not).

    ``confidence``: calibrated probability of the predicted class needed for an automatic
    verdict. ``outlier_quantile``: share of the known (training) rows that the gate may call
    outliers; rows scoring below that quantile go to experts. ``min_packets``: fewer packets
    than this (feature 1) never get an automatic verdict: a one-packet window's other 16
    features are constants, so its verdict would be the training mix's prior, not evidence.
    """

    def __init__(self, *, n_components: int = 200, gamma: float = 0.1, nu: float = 0.05,
                 outlier_quantile: float = 0.005, alpha: float = 1e-4, epochs: int = 5,
                 confidence: float = 0.98, calibration: str = "isotonic",
                 holdout: float = 0.2, replay_size: int = 50_000, min_packets: int = 2,
                 random_state: int | None = 0) -> None:
        self.n_components = n_components
        self.gamma = gamma
        self.nu = nu
        self.outlier_quantile = outlier_quantile
        self.alpha = alpha
        self.epochs = epochs
        self.confidence = confidence
        self.calibration = calibration
        self.holdout = holdout
        self.replay_size = replay_size
        self.min_packets = min_packets
        self.random_state = random_state

    # -- training ---------------------------------------------------------------------------
    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None
            ) -> BackscatterModel:
        for attr in [a for a in vars(self) if a.endswith("_") and not a.startswith("__")]:
            delattr(self, attr)
        return self.partial_fit(X, y, sample_weight)

    def partial_fit(self, X: np.ndarray, y: np.ndarray,
                    sample_weight: np.ndarray | None = None) -> BackscatterModel:
        """Update gate and classifier with a batch, mixed with the replay buffer."""
        X = self._check(X)
        y = np.asarray(y, np.int64)
        if X.shape[0] != y.shape[0]:
            raise ValueError("X and y differ in length")
        weight = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, float)
        first = not hasattr(self, "scaler_")
        if first:
            self.rng_ = np.random.default_rng(self.random_state)
            self.scaler_ = StandardScaler().fit(np.log1p(X))
            self.gate_map_ = Nystroem(gamma=self.gamma,
                                      n_components=min(self.n_components, len(X)),
                                      random_state=self.random_state).fit(self._z(X))
            self.gate_ = SGDOneClassSVM(nu=self.nu, random_state=self.random_state)
            self.classifier_ = SGDClassifier(loss="squared_hinge", average=True,
                                             alpha=self.alpha, learning_rate="constant",
                                             eta0=STEP, random_state=self.random_state)
            self.replay_X_ = np.empty((0, X.shape[1]))
            self.replay_y_ = np.empty(0, np.int64)
            self.replay_w_ = np.empty(0)
            self.seen_ = 0
            self.classes_ = np.array([NOT_DDOS, DDOS])
        all_X = np.vstack([X, self.replay_X_])
        all_y = np.concatenate([y, self.replay_y_])
        all_w = np.concatenate([weight, self.replay_w_])
        if len(np.unique(all_y)) < 2:
            raise DarkscopeError("training needs labelled examples of both DDoS and "
                                 "non-DDoS host-windows (check the rules and the input)")
        held = self._holdout_mask(all_y)
        if len(np.unique(all_y[held])) < 2:
            counts = {name: int((all_y == label).sum())
                      for name, label in (("DDoS", DDOS), ("non-DDoS", NOT_DDOS))}
            raise DarkscopeError(
                "too few labelled host-windows to calibrate the model (it keeps some of "
                f"each class aside): {counts['DDoS']:,} DDoS, {counts['non-DDoS']:,} "
                "non-DDoS; train on more traffic (at least 2 of each, far more for a useful "
                "model)")
        Z = self._z(all_X)
        phi = self.gate_map_.transform(Z)
        F = np.hstack([Z, phi])
        for _ in range(self.epochs):
            order = self.rng_.permutation(np.flatnonzero(~held))
            for chunk in np.array_split(order, max(1, len(order) // 4096)):
                self.classifier_.partial_fit(F[chunk], all_y[chunk], classes=self.classes_,
                                             sample_weight=all_w[chunk])
        for _ in range(self.epochs):
            self.gate_.partial_fit(phi[self.rng_.permutation(len(phi))])
        scores = self.gate_.decision_function(phi)
        self.gate_threshold_ = float(np.quantile(scores, self.outlier_quantile))
        self.calibrator_ = CalibratedClassifierCV(FrozenEstimator(self.classifier_),
                                                  method=self.calibration)
        self.calibrator_.fit(F[held], all_y[held])
        self._remember(X, y, weight)
        self.n_features_in_ = X.shape[1]
        return self

    def _holdout_mask(self, y: np.ndarray) -> np.ndarray:
        """A stratified random share of rows kept out of training for calibration."""
        held = np.zeros(len(y), bool)
        for label in (NOT_DDOS, DDOS):
            rows = np.flatnonzero(y == label)
            take = max(1, round(self.holdout * len(rows))) if len(rows) > 1 else 0
            held[self.rng_.choice(rows, take, replace=False)] = True
        return held

    def _remember(self, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> None:
        """Reservoir sample (bounded) of every labelled row seen so far."""
        X_all = np.vstack([self.replay_X_, X])
        y_all = np.concatenate([self.replay_y_, y])
        w_all = np.concatenate([self.replay_w_, w])
        self.seen_ += len(y)
        if len(y_all) > self.replay_size:
            keep = self.rng_.choice(len(y_all), self.replay_size, replace=False)
            X_all, y_all, w_all = X_all[keep], y_all[keep], w_all[keep]
        self.replay_X_, self.replay_y_, self.replay_w_ = X_all, y_all, w_all

    # -- prediction -------------------------------------------------------------------------
    def _check(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, np.float64)
        if X.ndim != 2:
            raise ValueError("X must be two-dimensional")
        if hasattr(self, "n_features_in_") and X.shape[1] != self.n_features_in_:
            raise DarkscopeError(f"the model expects {self.n_features_in_} features, got "
                                 f"{X.shape[1]}")
        if not np.all(np.isfinite(X)) or np.any(X < 0):
            raise DarkscopeError("features must be finite and non-negative")
        return X

    def _z(self, X: np.ndarray) -> np.ndarray:
        return self.scaler_.transform(np.log1p(X))

    def _both(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The classifier's inputs (scaled + Nystroem features) and the gate's."""
        phi = self.gate_map_.transform(self._z(self._check(X)))
        return np.hstack([self._z(X), phi]), phi

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """The L2-SVM margin (positive: DDoS)."""
        check_is_fitted(self, "classifier_")
        return self.classifier_.decision_function(self._both(X)[0])

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "calibrator_")
        return self.calibrator_.predict_proba(self._both(X)[0])

    def predict(self, X: np.ndarray) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(np.int64)

    def gate_score(self, X: np.ndarray) -> np.ndarray:
        """One-class score; below ``gate_threshold_`` is an unknown pattern."""
        check_is_fitted(self, "gate_")
        return self.gate_.decision_function(self._both(X)[1])

    def decide(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Verdict (DDOS, NOT_DDOS or REVIEW), confidence, and whether the gate objected."""
        if len(X) == 0:
            return np.empty(0, np.int64), np.empty(0), np.empty(0, bool)
        F, phi = self._both(X)
        p = self.calibrator_.predict_proba(F)[:, 1]
        confidence = np.maximum(p, 1.0 - p)
        outlier = self.gate_.decision_function(phi) < self.gate_threshold_
        verdict = np.where(p >= 0.5, DDOS, NOT_DDOS)
        verdict[outlier | (confidence < self.confidence) | (X[:, 0] < self.min_packets)] = REVIEW
        return verdict, confidence, outlier
