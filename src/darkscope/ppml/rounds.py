"""The round configuration: everything the parties must agree on before they encrypt.

The key holder publishes it through the aggregator together with the public key: hidden-layer
seed and size, activation, input ranges, classes, fixed-point encoding, the expected parties and
the most rows any of them may contribute. From these the capacity check is exact: the summed
``HᵀH`` of all parties cannot exceed the plaintext modulus.

A round may also carry a ``deadline`` and a ``quorum``: a party that never uploads (crashed,
offline, withdrawn) would otherwise block the round forever. Once the deadline has passed the
aggregator accepts no more contributions and releases the sum over those who did contribute,
provided they are at least ``quorum``; otherwise the round has failed. ``quorum`` is the
smallest set of parties any released sum covers, so it is the round's anonymity set.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from darkscope.errors import DarkscopeError
from darkscope.ppml.backends import BACKENDS
from darkscope.ppml.encoding import FixedPoint, packed_length
from darkscope.ppml.hidden import ACTIVATIONS, HiddenLayer
from darkscope.ppml.tokens import check_name
from darkscope.timeutil import NS, iso, parse_duration, parse_instant

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
    # Fewest parties a released aggregate may cover (0: every party of the round).
    quorum: int = 0
    # ISO 8601 UTC instant after which no contribution is accepted ("": none).
    deadline: str = ""

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
        self._check_quorum_and_deadline()
        if not self.layer_sha256:
            object.__setattr__(self, "layer_sha256", layer.sha256())

    def _check_quorum_and_deadline(self) -> None:
        quorum = self.quorum or len(self.parties)
        if not 2 <= quorum <= len(self.parties):
            raise RoundConfigError(f"quorum {self.quorum} must lie between 2 (a sum over one "
                                   f"party is that party's own sums) and the {len(self.parties)} "
                                   "parties of the round")
        object.__setattr__(self, "quorum", quorum)
        if self.deadline:
            try:
                moment = parse_instant(self.deadline)
            except ValueError as exc:
                raise RoundConfigError(f"deadline: {exc}") from exc
            object.__setattr__(self, "deadline", iso(moment // NS * NS))
        elif quorum < len(self.parties):
            raise RoundConfigError(f"quorum {quorum} of {len(self.parties)} parties needs a "
                                   "deadline: the moment from which the parties that are in "
                                   "count without the others")

    @property
    def deadline_epoch(self) -> float | None:
        """The deadline as Unix seconds, or None for a round that waits for every party."""
        return parse_instant(self.deadline) / NS if self.deadline else None

    def closed(self, now: float | None = None) -> bool:
        """Whether the deadline has passed: no contribution counts any more."""
        deadline = self.deadline_epoch
        return deadline is not None and (time.time() if now is None else now) >= deadline

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
        # rounds published before quorum and deadline existed wait for every party
        raw = {"quorum": 0, "deadline": "", **raw}
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
            for key in ("n_hidden", "seed", "scale_bits", "max_rows_per_party", "quorum"):
                values[key] = int(values[key])
            values["layer_sha256"] = str(values["layer_sha256"])
            values["deadline"] = str(values["deadline"] or "")
        except (TypeError, ValueError) as exc:
            raise RoundConfigError(f"round configuration has a bad value ({exc})") from exc
        return cls(**values)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True)


def resolve_deadline(text: str, now: float | None = None) -> str:
    """A deadline as written in a round file or on the command line: an ISO 8601 instant, or a
    duration from now (``30m``, ``2h``) -> ISO 8601 UTC."""
    now = time.time() if now is None else now
    try:
        return iso(round(now) * NS + parse_duration(text))
    except ValueError:
        try:
            return iso(parse_instant(text))
        except ValueError:
            raise RoundConfigError(f"deadline {text!r}: give an ISO 8601 time "
                                   "(2026-12-06T15:00Z) or a duration from now (30m, 2h)") \
                from None
