"""The round configuration: everything the parties must agree on before they encrypt.

The key holder publishes it through the aggregator together with the public key: hidden-layer
seed and size, activation, input ranges, classes, fixed-point encoding, the expected parties and
the most rows any of them may contribute. From these the capacity check is exact: the summed
``HᵀH`` of all parties cannot exceed the plaintext modulus.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from darkscope.errors import DarkscopeError
from darkscope.ppml.backends import BACKENDS
from darkscope.ppml.encoding import FixedPoint, packed_length
from darkscope.ppml.hidden import ACTIVATIONS, HiddenLayer
from darkscope.ppml.tokens import check_name

ROUND_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class RoundConfigError(DarkscopeError):
    """A round configuration that is inconsistent or incomplete."""


@dataclass(frozen=True)
class RoundConfig:
    round_id: str
    backend: str
    parties: tuple[str, ...]
    classes: tuple[int, ...]
    n_hidden: int
    activation: str
    seed: int
    scale_bits: int
    max_rows_per_party: int
    feature_low: tuple[float, ...]
    feature_high: tuple[float, ...]
    # SHA-256 of the hidden layer's W and b as the key holder built them ("" when creating a
    # round: computed here). Parties check it before using the layer.
    layer_sha256: str = ""

    def __post_init__(self) -> None:
        if not ROUND_ID.fullmatch(self.round_id):
            raise RoundConfigError(f"round id {self.round_id!r} must be 1-64 letters, digits, "
                                   "'.', '_' or '-'")
        if self.backend not in BACKENDS:
            raise RoundConfigError(f"backend {self.backend!r} is not one of {BACKENDS}")
        if len(self.parties) < 2 or len(set(self.parties)) != len(self.parties):
            raise RoundConfigError("a round needs at least two distinct parties, or the "
                                   "'aggregate' would be one party's own sums")
        for name in self.parties:
            check_name(name)
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes):
            raise RoundConfigError("a round needs at least two distinct classes")
        # Sorted, so that every party's one-hot columns (searchsorted) agree with β's columns.
        object.__setattr__(self, "classes", tuple(sorted(self.classes)))
        if self.activation not in ACTIVATIONS:
            raise RoundConfigError(f"activation {self.activation!r} is not one of {ACTIVATIONS}")
        if self.max_rows_per_party < 1:
            raise RoundConfigError("max_rows_per_party must be positive")
        layer = self.layer  # validates sizes and ranges
        FixedPoint(self.scale_bits)
        if not self.layer_sha256:
            object.__setattr__(self, "layer_sha256", layer.sha256())

    def verify_layer(self) -> None:
        """Refuse to use a hidden layer that differs from the one the round was made with."""
        here = self.layer.sha256()
        if here != self.layer_sha256:
            raise RoundConfigError(
                f"round {self.round_id!r}: the hidden layer built here from seed {self.seed} has "
                f"SHA-256 {here}, the round's is {self.layer_sha256}; numpy's random stream "
                f"differs between versions (numpy {np.__version__} here), so the sums would not "
                "match the other parties'")

    @property
    def layer(self) -> HiddenLayer:
        return HiddenLayer(n_features=len(self.feature_low), n_hidden=self.n_hidden,
                           activation=self.activation, seed=self.seed,
                           feature_low=self.feature_low, feature_high=self.feature_high)

    @property
    def encoding(self) -> FixedPoint:
        return FixedPoint(self.scale_bits)

    @property
    def total_rows_bound(self) -> int:
        return self.max_rows_per_party * len(self.parties)

    @property
    def n_values(self) -> int:
        return packed_length(self.n_hidden, len(self.classes))

    @property
    def class_array(self) -> np.ndarray:
        return np.asarray(self.classes)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any], new: bool = False) -> RoundConfig:
        """Read a published round; ``new`` (the key holder creating one) computes a missing
        ``layer_sha256`` instead of requiring it."""
        names = {f.name for f in fields(cls)}
        if new:
            raw = {"layer_sha256": "", **raw}
        elif not raw.get("layer_sha256", True):
            raise RoundConfigError("round configuration has an empty layer_sha256")
        missing = names - set(raw)
        if missing:
            raise RoundConfigError(f"round configuration lacks {sorted(missing)}")
        try:
            values = {n: raw[n] for n in names}
            for key in ("parties", "classes", "feature_low", "feature_high"):
                values[key] = tuple(values[key])
            values["classes"] = tuple(int(c) for c in values["classes"])
            values["feature_low"] = tuple(float(v) for v in values["feature_low"])
            values["feature_high"] = tuple(float(v) for v in values["feature_high"])
            for key in ("n_hidden", "seed", "scale_bits", "max_rows_per_party"):
                values[key] = int(values[key])
            values["layer_sha256"] = str(values["layer_sha256"])
        except (TypeError, ValueError) as exc:
            raise RoundConfigError(f"round configuration has a bad value ({exc})") from exc
        return cls(**values)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True)
