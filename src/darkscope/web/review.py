"""The review queue as experts work it in the browser.

- **Order.** Pending items, least confident first (the detector's uncertainty); a fixed tenth
  of the queue, chosen by a hash of the item and not by its score, is kept apart as the
  *evaluation slice* and shown in hash order: labels there are a random sample, so accuracy
  measured on them is unbiased (uncertainty-ordered labels are not).
- **Labels** go to the store's append-only history with who, when, the label replaced, and
  the working model's version and confidence for the item at that moment (the version and
  score the item was queued with when no model is loaded); undo appends the label before.
- **Learning.** Each label is learnt at once by the dashboard's working copy of the model (the
  same step as ``darkscope monitor``'s, ``backscatter.online``), and the page shows what that
  update changes: how many pending items the model now decides. The model files are not
  written: a running monitor learns the same labels from the store at its next poll.
- **Undo unlearns.** A gradient step cannot be taken back, so an undo rebuilds the working
  copy: the loaded model again, then every item labelled here that still has a label, learnt
  in one step. The withdrawn label is then in no part of the model.
- **Agreement.** Items labelled by two experts give Cohen's κ per pair; disagreements are listed.
- **Accuracy on the evaluation slice.** Before a label of a slice item is learnt, the working
  model's guess for it (DDoS or not) is stored with the label (test-then-train), and the page
  shows how often those guesses match the experts' standing labels, with a Wilson 95 % interval.
  Because the slice is a random sample of the queue, this estimates the model's accuracy on
  what it leaves to experts, free of the bias of uncertainty-ordered labels.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from darkscope.backscatter import persist
from darkscope.backscatter.online import ExpertUpdate, learn_expert_labels
from darkscope.backscatter.persist import SavedModel
from darkscope.errors import UsageError
from darkscope.store import Label, ReviewItem, ReviewStore

EVALUATION_PERCENT = 10


def _bucket(item: ReviewItem) -> int:
    digest = hashlib.sha256(f"{item.src}:{item.window_start}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def in_evaluation_slice(item: ReviewItem) -> bool:
    return _bucket(item) % 100 < EVALUATION_PERCENT


def find_model(root: Path) -> Path | None:
    """The newest backscatter model directory under ``root`` (a monitor's latest version)."""
    manifests = sorted(root.rglob(persist.MANIFEST), key=lambda p: p.stat().st_mtime)
    return manifests[-1].parent if manifests else None


@dataclass(frozen=True)
class LabelOutcome:
    label: Label
    update: ExpertUpdate | None
    model_version: str | None


class Reviewer:
    """The queue, labels and model preview; ``store`` gives the calling thread's store."""

    def __init__(self, store: Callable[[], ReviewStore], model_path: Path | None) -> None:
        self._store = store
        self._lock = threading.Lock()
        self.model: SavedModel | None = None
        self._base: SavedModel | None = None      # the model as loaded, for undo
        self.base_version: str | None = None
        self.updates = 0
        self._learnt: dict[tuple[int, int | None], None] = {}  # items labelled here, in order
        if model_path is not None:
            self.model = persist.load(model_path)
            self._base = copy.deepcopy(self.model)
            self.base_version = f"{model_path.name}@{_digest(model_path)}"

    @property
    def store(self) -> ReviewStore:
        return self._store()

    @property
    def model_version(self) -> str | None:
        if self.base_version is None:
            return None
        return self.base_version + (f"+{self.updates}" if self.updates else "")

    def queue(self, evaluation: bool = False, limit: int = 200) -> list[ReviewItem]:
        pending = [i for i in self.store.items(pending_only=True)
                   if in_evaluation_slice(i) == evaluation]
        if evaluation:
            pending.sort(key=_bucket)
        return pending[:limit]

    def counts(self) -> dict[str, int]:
        items = self.store.items()
        pending = [i for i in items if i.label is None]
        return {"queued": len(items), "pending": len(pending),
                "evaluation_pending": sum(map(in_evaluation_slice, pending)),
                "labelled": len(items) - len(pending)}

    def item(self, src: int, window_start: int) -> ReviewItem | None:
        return next((i for i in self.store.items()
                     if i.src == src and i.window_start == window_start), None)

    def label(self, item: ReviewItem, label: str, who: str) -> LabelOutcome:
        with self._lock:
            version, score = self._judge(item)
            record = self.store.label(item.src, label, window_start=item.window_start,
                                      who=who, model_version=version, score=score,
                                      guess=self._guess(item))
            update = self._learn(item.src, item.window_start)
            return LabelOutcome(record, update, self.model_version)

    def _judge(self, item: ReviewItem) -> tuple[str | None, float]:
        """The working model's version and confidence for ``item`` now, or what the item was
        queued with when no model here can judge its features."""
        if self.model is None or item.feature_definition != self.model.definition.key():
            return item.model_version or self.model_version, item.confidence
        _, confidence, _ = self.model.model.decide(np.array([item.features], np.float64))
        return self.model_version, float(confidence[0])

    def undo(self, who: str) -> LabelOutcome | None:
        """Withdraw ``who``'s newest history row (an undo of an undo re-applies the label);
        None when there is none, or someone labelled that item since."""
        with self._lock:
            mine = next((h for h in self.store.history(limit=500) if h.who == who), None)
            if mine is None:
                return None
            try:
                record = self.store.undo(mine.id, who=who)
            except UsageError:
                return None  # replaced by another expert's label since: theirs stands
            # the label now standing (the one before, or none) is learnt with the others
            self._learnt[(record.src, record.window_start)] = None
            return LabelOutcome(record, self._relearn(), self.model_version)

    def _relearn(self) -> ExpertUpdate | None:
        """The loaded model again, with every item labelled here that still has a label."""
        if self._base is None:
            return None
        self.model = copy.deepcopy(self._base)
        standing = [i for i in self.store.items() if i.label is not None
                    and (i.src, i.window_start) in self._learnt]
        self._learnt = {(i.src, i.window_start): None for i in standing}
        update = learn_expert_labels(self.model, standing, self.store.items(pending_only=True))
        self.updates = 0 if update is None else self.updates + 1   # versions never reused
        return update

    def _guess(self, item: ReviewItem) -> tuple[str, float, str | None] | None:
        """The working model's prediction for an evaluation-slice item, before learning it."""
        if (self.model is None or not in_evaluation_slice(item)
                or item.feature_definition != self.model.definition.key()):
            return None
        p_ddos = float(self.model.model.predict_proba(
            np.array([item.features], np.float64))[0, 1])
        return ("ddos" if p_ddos >= 0.5 else "not-ddos", p_ddos, self.model_version)

    def evaluation(self) -> dict[str, Any]:
        """Accuracy of the model's guesses on labelled evaluation-slice items: each item's
        first guess (made before any label of it was learnt) against its standing label."""
        slice_items = {(i.src, i.window_start): i for i in self.store.items()
                       if in_evaluation_slice(i) and i.label is not None}
        guesses = self.store.guesses()
        first: dict[tuple[int, int | None], Any] = {}
        for record in reversed(self.store.history()):
            key = (record.src, record.window_start)
            if key in slice_items and key not in first and record.id in guesses:
                first[key] = guesses[record.id]
        confusion = {truth: {"ddos": 0, "not-ddos": 0} for truth in ("ddos", "scan", "other")}
        for key, guess in first.items():
            confusion[slice_items[key].label][guess.predicted] += 1
        scored = len(first)
        right = confusion["ddos"]["ddos"] + sum(confusion[t]["not-ddos"]
                                                for t in ("scan", "other"))
        low, high = _wilson(right, scored)
        return {"labelled": len(slice_items), "scored": scored, "correct": right,
                "accuracy": right / scored if scored else None, "interval95": [low, high]
                if scored else None, "confusion": confusion}

    def _learn(self, src: int, window_start: int | None) -> ExpertUpdate | None:
        if self.model is None:
            return None
        labelled = [i for i in self.store.items() if i.src == src and i.label is not None
                    and (window_start is None or i.window_start == window_start)]
        update = learn_expert_labels(self.model, labelled,
                                     self.store.items(pending_only=True))
        if update is not None:
            self.updates += 1
            self._learnt.update({(i.src, i.window_start): None for i in labelled})
        return update

    def history(self, limit: int = 50) -> list[Label]:
        return self.store.history(limit=limit)

    def agreement(self) -> dict[str, Any]:
        """Cohen's κ per pair of experts over the items both labelled, and the items where
        experts disagree (each expert's own latest label counts)."""
        from sklearn.metrics import cohen_kappa_score

        latest: dict[tuple[int, int | None], dict[str, str]] = {}
        for record in reversed(self.store.history()):
            votes = latest.setdefault((record.src, record.window_start), {})
            if record.label is None:
                votes.pop(record.who, None)
            else:
                votes[record.who] = record.label
        experts = sorted({who for votes in latest.values() for who in votes})
        pairs = []
        for a, b in itertools.combinations(experts, 2):
            both = [(v[a], v[b]) for v in latest.values() if a in v and b in v]
            if not both:
                continue
            left, right = zip(*both, strict=True)
            agree = sum(x == y for x, y in both) / len(both)
            # one label used by both throughout: chance agreement is 1 and kappa is undefined
            kappa = (None if len(set(left) | set(right)) == 1
                     else float(cohen_kappa_score(left, right)))
            pairs.append({"experts": [a, b], "items": len(both), "agreement": agree,
                          "kappa": kappa})
        disagreements = [{"src": src, "window_start": start, "votes": votes}
                         for (src, start), votes in latest.items()
                         if len(set(votes.values())) > 1]
        return {"pairs": pairs, "disagreements": disagreements}


def _wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (sound at small n and near 0 or 1)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _digest(model_path: Path) -> str:
    return hashlib.sha256((model_path / persist.ESTIMATOR).read_bytes()).hexdigest()[:12]
