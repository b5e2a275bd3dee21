"""Learning experts' labels of queued host-windows: the one online step that the monitor and
the dashboard both take, so a label given anywhere moves the model the same way."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from darkscope.backscatter.model import REVIEW
from darkscope.backscatter.persist import SavedModel
from darkscope.backscatter.training import EXPERT_WEIGHT
from darkscope.errors import DarkscopeError
from darkscope.store import ReviewItem


@dataclass(frozen=True)
class ExpertUpdate:
    learnt: int          # labelled items the model learnt
    pending: int         # items still waiting for an expert (same feature definition)
    now_decided: int     # of those, how many the updated model decides by itself


def learnable(saved: SavedModel, items: Sequence[ReviewItem]) -> list[ReviewItem]:
    """Labelled items whose features were computed with this model's definition."""
    key = saved.definition.key()
    return [item for item in items if item.label is not None
            and item.feature_definition == key]


def learn_expert_labels(saved: SavedModel, labelled: Sequence[ReviewItem],
                        pending: Sequence[ReviewItem]) -> ExpertUpdate | None:
    """``partial_fit`` the labelled items (with the model's replay buffer, weighted as
    ``backscatter train`` weights experts) and count the pending items it now decides.
    None when there is nothing to learn yet (no item, or one class with nothing to replay)."""
    items = learnable(saved, labelled)
    if not items:
        return None
    X = np.array([item.features for item in items], np.float64)
    y = np.array([1 if item.label == "ddos" else 0 for item in items], np.int64)
    try:
        saved.model.partial_fit(X, y, np.full(len(y), EXPERT_WEIGHT))
    except DarkscopeError:
        return None
    key = saved.definition.key()
    waiting = [item for item in pending if item.feature_definition == key]
    decided = 0
    if waiting:
        verdict, _confidence, _outlier = saved.model.decide(
            np.array([item.features for item in waiting], np.float64))
        decided = int((verdict != REVIEW).sum())
    return ExpertUpdate(len(items), len(waiting), decided)
