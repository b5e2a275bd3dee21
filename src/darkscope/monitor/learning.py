"""Online learning while the monitor runs, and the drift watch that restrains it.

- **Expert labels.** At every poll the learner asks the store for labels recorded since it last
  looked. Queued host-windows that gained a label (their feature vectors are in the queue) are
  learnt at once with ``partial_fit`` (the model's replay buffer keeps older examples in every
  update), weighted as ``backscatter train`` weights expert answers. Labels recorded before
  the monitor first started are taken to be in the model already.
- **Self-training** (``--self-train``): at the end of each detection span the model also
  learns the span's rule-labelled windows and its own confident verdicts, as ``backscatter
  train`` does.
- **Versions.** Every update is saved as ``OUT/models/vNNNN`` and becomes the model that judges
  from then on; verdicts and alerts name the version (``vNNNN@<sha256 prefix>``).
- **Drift.** The gate's outlier rate over each span's model-judged windows feeds ADWIN (river):
  a significant change is reported in the status and holds self-training back (a model should
  not teach itself on traffic it has not seen before) until an expert confirms with
  ``darkscope monitor --confirm-drift -o OUT``. Expert-label updates go on: an expert is in the
  loop already.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from darkscope.backscatter import persist
from darkscope.backscatter.online import learn_expert_labels
from darkscope.backscatter.persist import SavedModel
from darkscope.backscatter.rules import RuleSet
from darkscope.backscatter.telescope import Telescope
from darkscope.backscatter.training import train
from darkscope.errors import DarkscopeError
from darkscope.monitor.outputs import iso
from darkscope.store import ReviewStore

CONFIRM_FILE = "confirm-drift"
ADWIN_DELTA = 0.002


def version_name(number: int, model_dir: Path) -> str:
    digest = hashlib.sha256((model_dir / persist.ESTIMATOR).read_bytes()).hexdigest()[:12]
    return f"v{number:04d}@{digest}"


@dataclass
class LearningState:
    version: int = 1
    model_dir: str = ""            # relative to OUT, or the starting model's own path
    label_id: int = -1             # newest store label learnt; -1: not looked yet
    updates: list[dict] = field(default_factory=list)   # the latest few, newest last
    drift: dict | None = None      # the unconfirmed drift, if any
    drifts: int = 0


class Learner:
    def __init__(self, out: Path, start_model: Path, state: LearningState | None, *,
                 store: ReviewStore | None, self_train: bool, enabled: bool = True) -> None:
        self.out = out
        self.store = store
        self.self_train = self_train
        self.learn_labels = enabled and store is not None
        self.state = state or LearningState(model_dir=str(start_model.resolve()))
        self._adwin = self._load_adwin()

    # -- the model in use -----------------------------------------------------------------
    @property
    def model_path(self) -> Path:
        path = Path(self.state.model_dir)
        return path if path.is_absolute() else self.out / path

    def current(self) -> tuple[SavedModel, str]:
        path = self.model_path
        return persist.load(path), version_name(self.state.version, path)

    def _save(self, saved: SavedModel, reason: dict) -> str:
        self.state.version += 1
        relative = Path("models") / f"v{self.state.version:04d}"
        (self.out / "models").mkdir(exist_ok=True)
        persist.save(saved, self.out / relative, overwrite=True)
        self.state.model_dir = str(relative)
        name = version_name(self.state.version, self.out / relative)
        self.state.updates = [*self.state.updates[-9:], {"version": name, **reason}]
        return name

    # -- expert labels ----------------------------------------------------------------------
    def from_experts(self, saved: SavedModel) -> str | None:
        """Learn the labels experts gave since the last look; the new version, or None."""
        self._confirmations()
        if self.store is None or not self.learn_labels:
            return None
        new, newest = self.store.labels_after(max(self.state.label_id, 0))
        if self.state.label_id < 0:   # first start: what is in the store is in the model
            self.state.label_id = newest
            return None
        if not new:
            return None
        self.state.label_id = newest
        labelled = [item for item in self.store.items() if item.label is not None
                    and ((item.src, item.window_start) in new or (item.src, None) in new)]
        update = learn_expert_labels(saved, labelled, self.store.items(pending_only=True))
        if update is None:
            return None  # labels for hosts never queued (applied as verdicts), or one class
        return self._save(saved, {"source": "experts", "labels": update.learnt,
                                  "pending_now_decided": update.now_decided,
                                  "pending": update.pending})

    # -- self-training and drift at the end of a span -----------------------------------------
    def after_span(self, saved: SavedModel, table: pa.Table, rules: RuleSet,
                   telescope: Telescope, outlier: np.ndarray, span_start: int) -> str | None:
        """Watch the gate's outlier rate for drift; self-train on the span unless held."""
        if len(outlier):
            for flag in outlier:
                self._adwin.update(float(flag))
                if self._adwin.drift_detected and self.state.drift is None:
                    self.state.drifts += 1
                    self.state.drift = {"detected_in_span": iso(span_start),
                                        "outlier_rate_now": round(float(outlier.mean()), 4),
                                        "outlier_rate_estimate": round(
                                            float(self._adwin.estimation), 4)}
        if not self.self_train or self.state.drift is not None:
            return None
        try:
            updated, report = train(table, rules, telescope, base=saved)
        except DarkscopeError:
            return None  # a span without both classes teaches nothing
        return self._save(updated, {"source": "self-training", "span": iso(span_start),
                                    "rule_labelled": report.rule_labelled,
                                    "auto_labelled": report.auto_labelled})

    def _confirmations(self) -> None:
        confirm = self.out / CONFIRM_FILE
        if self.state.drift is not None and confirm.exists():
            who = json.loads(confirm.read_text(encoding="utf-8"))
            self.state.updates = [*self.state.updates[-9:],
                                  {"source": "drift confirmed", **who, **self.state.drift}]
            self.state.drift = None
            self._adwin = _new_adwin()
        confirm.unlink(missing_ok=True)

    # -- persistence --------------------------------------------------------------------------
    @property
    def _adwin_path(self) -> Path:
        return self.out / ".checkpoint" / "drift.pickle"

    def _load_adwin(self):
        if self._adwin_path.exists():
            with self._adwin_path.open("rb") as handle:
                return pickle.load(handle)  # our own checkpoint file, written below
        return _new_adwin()

    def save_state(self) -> dict:
        self._adwin_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._adwin_path.with_suffix(".tmp")
        with tmp.open("wb") as handle:
            pickle.dump(self._adwin, handle)
        tmp.replace(self._adwin_path)
        return asdict(self.state)


def _new_adwin():
    try:
        from river.drift import ADWIN
    except ImportError as exc:
        raise DarkscopeError("darkscope monitor needs river for drift detection: pip "
                             "install 'darkscope[monitor]'") from exc
    return ADWIN(delta=ADWIN_DELTA)
