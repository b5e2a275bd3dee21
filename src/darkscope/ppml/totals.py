"""The key holder's running totals across rounds: the online form of the multi-party ELM.

New data keeps arriving at every party. Each later round under the same hidden layer, encoding
and classes yields the aggregate of the new rows only; the key holder adds it to the decrypted
totals of earlier rounds and re-solves β, exactly as ``ELM.partial_fit`` does in one process. The
totals file stays with the key holder (mode 0600): it is aggregate plaintext.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from darkscope.errors import DarkscopeError, InputFormatError
from darkscope.io import atomic_path
from darkscope.ppml.encoding import FixedPoint
from darkscope.ppml.hidden import HiddenLayer
from darkscope.ppml.rounds import RoundConfig


@dataclass
class Totals:
    layer: HiddenLayer
    scale_bits: int
    classes: tuple[int, ...]
    gram: np.ndarray
    cross: np.ndarray
    rounds: list[str] = field(default_factory=list)
    rows_bound: int = 0

    @classmethod
    def empty(cls, config: RoundConfig) -> Totals:
        return cls(config.layer, config.scale_bits, config.classes,
                   np.zeros((config.n_hidden, config.n_hidden), np.int64),
                   np.zeros((config.n_hidden, len(config.classes)), np.int64))

    def add(self, config: RoundConfig, gram: np.ndarray, cross: np.ndarray) -> None:
        """Add one round's decrypted aggregate; refuse rounds that do not share the model."""
        if (config.layer, config.scale_bits, config.classes) != \
                (self.layer, self.scale_bits, self.classes):
            raise DarkscopeError(f"round {config.round_id!r} uses another hidden layer, encoding "
                                 "or class list than the accumulated rounds; start new totals")
        if config.round_id in self.rounds:
            raise DarkscopeError(f"round {config.round_id!r} is already in the totals")
        rows_bound = self.rows_bound + config.total_rows_bound
        FixedPoint(self.scale_bits).check_capacity(
            rows_bound, None, f"adding round {config.round_id!r} to the totals")
        self.gram = self.gram + gram
        self.cross = self.cross + cross
        self.rounds.append(config.round_id)
        self.rows_bound = rows_bound

    def save(self, path: str | Path) -> None:
        meta = {"layer": asdict(self.layer), "scale_bits": self.scale_bits,
                "classes": list(self.classes), "rounds": self.rounds,
                "rows_bound": self.rows_bound}
        buffer = io.BytesIO()
        np.savez(buffer, gram=self.gram, cross=self.cross,
                 meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
        with atomic_path(path) as tmp:
            tmp.touch(mode=0o600)
            os.chmod(tmp, 0o600)
            tmp.write_bytes(buffer.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> Totals:
        try:
            with np.load(path) as data:
                gram, cross = data["gram"], data["cross"]
                meta = json.loads(bytes(data["meta"]).decode())
            return cls(HiddenLayer.from_json(meta["layer"]), int(meta["scale_bits"]),
                       tuple(meta["classes"]), gram, cross, list(meta["rounds"]),
                       int(meta["rows_bound"]))
        except (OSError, ValueError, KeyError, TypeError, DarkscopeError) as exc:
            raise InputFormatError(path, f"not a darkscope ppml totals file ({exc})") from exc
