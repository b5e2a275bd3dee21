"""Training and online updates: rules label what they can, the model labels what it is sure
of, experts (or the truth-table oracle standing in for them) label what is left.

One call to :func:`train` is one online step (:func:`train_stream`: one per chunk of whole
time windows): the model (new, or loaded to be updated) is
``partial_fit`` first on the rule- and expert-labelled windows of the batch, then on its own
confident verdicts and the experts' new answers; its replay buffer keeps earlier rule- and
auto-labelled rows in every update so older patterns are not forgotten.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import astuple, dataclass

import numpy as np
import pyarrow as pa

from darkscope import __version__
from darkscope.backscatter.features import (
    FeatureDefinition,
    HostWindows,
    context_features,
    extract,
)
from darkscope.backscatter.flow import (
    Decisions,
    ask_oracle,
    label_lookup,
    record_reviews,
    window_keys,
)
from darkscope.backscatter.inputs import WindowChunks
from darkscope.backscatter.model import NOT_DDOS, REVIEW, BackscatterModel
from darkscope.backscatter.persist import SavedModel
from darkscope.backscatter.rules import NO_RULE, RuleSet, apply_rules
from darkscope.backscatter.telescope import Telescope, resolve
from darkscope.errors import DarkscopeError
from darkscope.store import ReviewStore

EXPERT_WEIGHT = 3.0  # an expert's answer counts more than a rule's or the model's own


@dataclass
class TrainReport:
    windows: int
    rule_labelled: int
    expert_labelled: int
    auto_labelled: int
    sent_to_experts: int
    answered_by_oracle: int
    queued: int
    seconds: float

    def as_dict(self) -> dict[str, float]:
        return dict(vars(self))


def _stored_expert_rows(store: ReviewStore | None, definition: FeatureDefinition,
                        exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labelled queue items from earlier runs (their stored features), minus this batch's."""
    if store is None:
        return np.empty((0, len(definition.names))), np.empty(0, np.int64)
    key = definition.key()
    rows = [item for item in store.items() if item.label is not None
            and item.feature_definition == key]
    if not rows:
        return np.empty((0, len(definition.names))), np.empty(0, np.int64)
    keys = window_keys(np.array([r.src for r in rows], np.uint64),
                       np.array([r.window_start for r in rows], np.int64))
    keep = ~np.isin(keys, exclude)
    X = np.array([r.features for r in rows], np.float64)[keep]
    y = np.array([1 if r.label == "ddos" else 0 for r in rows], np.int64)[keep]
    return X, y


def train(table: pa.Table, rules: RuleSet, telescope: Telescope, *,
          definition: FeatureDefinition | None = None, base: SavedModel | None = None,
          store: ReviewStore | None = None, truth: pa.Table | None = None,
          expert_budget: int | None = None, params: dict | None = None,
          seed: int = 0) -> tuple[SavedModel, TrainReport]:
    """One online training step over a packet table; returns the model and what happened."""
    started = time.perf_counter()
    if base is not None:
        definition = base.definition
    step = training_step(table, definition or FeatureDefinition(), rules, telescope)
    return fit_windows(step.windows, step.rule_index, step.rule_label, step.judged,
                       step.context, rules, base=base, store=store, truth=truth,
                       expert_budget=expert_budget, params=params, seed=seed, started=started)


def training_step(table: pa.Table, definition: FeatureDefinition, rules: RuleSet,
                  telescope: Telescope) -> TrainingStep:
    """A packet table's host-windows with their rules, judged vectors and context."""
    windows = extract(table, definition)
    rule_index, rule_label = apply_rules(rules, table, windows.row_of_packet, len(windows),
                                         windows.packets, telescope)
    judged, context = context_features(table, windows)
    return TrainingStep(windows, rule_index, rule_label, judged, context)


def fit_windows(windows: HostWindows, rule_index: np.ndarray, rule_label: np.ndarray,
                judged: np.ndarray, context: np.ndarray, rules: RuleSet, *,
                base: SavedModel | None = None, store: ReviewStore | None = None,
                truth: pa.Table | None = None, expert_budget: int | None = None,
                params: dict | None = None, seed: int = 0,
                started: float | None = None) -> tuple[SavedModel, TrainReport]:
    """The training step on host-windows whose rules and judged vectors are known (however
    they were computed). Rows are used in the order given: the model's solvers visit them in
    order, so another order trains a slightly different model."""
    started = time.perf_counter() if started is None else started
    definition = windows.definition
    labels = store.labels() if store is not None else {}
    expert = label_lookup(windows, labels)
    stored_X, stored_y = _stored_expert_rows(store, definition,
                                             window_keys(windows.src, windows.window_start))
    ruled = (rule_index != NO_RULE) & (expert < 0)
    known = expert >= 0
    X = np.vstack([windows.X[ruled], windows.X[known], stored_X])
    y = np.concatenate([rule_label[ruled], expert[known], stored_y])
    w = np.concatenate([np.ones(ruled.sum()), np.full(known.sum() + len(stored_y),
                                                      EXPERT_WEIGHT)])
    if len(np.unique(y)) < 2:
        raise DarkscopeError("the rules and stored labels give no examples of both DDoS and "
                             "non-DDoS host-windows in this input; train on more traffic")
    if base is None:
        model = BackscatterModel(random_state=seed, **(params or {})).fit(X, y, w)
        saved = SavedModel(model, definition, {"trained_by": f"darkscope {__version__}",
                                               "updates": 0})
    else:
        saved = base
        saved.model.partial_fit(X, y, w)
        saved.info["updates"] = int(saved.info.get("updates", 0)) + 1

    open_rows = np.flatnonzero((rule_index == NO_RULE) & ~known)
    verdict, confidence, outlier = saved.model.decide(judged[open_rows])
    # Only the open rows can be REVIEW; the others stay NOT_DDOS here and are not used.
    decisions = Decisions(windows, np.full(len(windows), NOT_DDOS, np.int64),
                          np.zeros(len(windows), np.int64), np.ones(len(windows)),
                          np.zeros(len(windows), bool), rules, context)
    decisions.verdict[open_rows] = verdict
    decisions.confidence[open_rows] = confidence
    decisions.outlier[open_rows] = outlier
    sent = int((verdict == REVIEW).sum())
    answered = np.empty(0, np.int64)
    if truth is not None:
        answered = ask_oracle(decisions, truth, store, expert_budget)
    queued = record_reviews(decisions, store) if store is not None else 0

    auto = open_rows[verdict != REVIEW]
    # A confident verdict on a sparse window was reached on its host's context vector: that
    # vector, not the window's own few packets, is what the verdict labels.
    X2 = np.vstack([judged[auto], windows.X[answered]])
    y2 = np.concatenate([decisions.verdict[auto], decisions.verdict[answered]])
    w2 = np.concatenate([np.ones(len(auto)), np.full(len(answered), EXPERT_WEIGHT)])
    if len(y2):
        saved.model.partial_fit(X2, y2, w2)
    report = TrainReport(len(windows), int(ruled.sum()), int(known.sum() + len(stored_y)),
                         len(auto), sent, len(answered), queued,
                         time.perf_counter() - started)
    saved.info["last_update"] = report.as_dict()
    return saved, report


def train_stream(inputs: list, rules: RuleSet, telescope: str | None, *,
                 definition: FeatureDefinition | None = None, base: SavedModel | None = None,
                 store: ReviewStore | None = None, truth: pa.Table | None = None,
                 expert_budget: int | None = None, params: dict | None = None, seed: int = 0,
                 chunk_rows: int = 1 << 22) -> tuple[SavedModel, TrainReport, Telescope, int]:
    """One online step per chunk of whole time windows (bounded memory); the oracle budget is
    shared by all chunks. Returns the model, the summed report, the telescope and packets."""
    if base is not None:
        definition = base.definition
    definition = definition or FeatureDefinition()
    chunks = WindowChunks(inputs, definition.chunk_s, chunk_rows)
    scope: Telescope | None = None
    packets = 0

    def steps() -> Iterator[TrainingStep]:
        nonlocal scope, packets
        for table in chunks:
            scope = resolve(telescope, table, scope)
            packets += table.num_rows
            yield training_step(table, definition, rules, scope)

    saved, total = fit_steps(steps(), rules, base=base, store=store, truth=truth,
                             expert_budget=expert_budget, params=params, seed=seed)
    assert scope is not None
    return saved, total, scope, packets


@dataclass
class TrainingStep:
    """The host-windows of one online step, with what :func:`fit_windows` needs of them."""

    windows: HostWindows
    rule_index: np.ndarray
    rule_label: np.ndarray
    judged: np.ndarray
    context: np.ndarray


def fit_steps(steps: Iterable[TrainingStep], rules: RuleSet, *, base: SavedModel | None = None,
              store: ReviewStore | None = None, truth: pa.Table | None = None,
              expert_budget: int | None = None, params: dict | None = None,
              seed: int = 0) -> tuple[SavedModel, TrainReport]:
    """:func:`fit_windows` on each step in turn (however the steps were computed: this
    machine's chunks or a cluster's), the oracle budget shared; the summed report."""
    saved, total = base, None
    remaining = expert_budget
    pending = iter(steps)
    while True:
        started = time.perf_counter()   # the step's features are computed as it is drawn
        step = next(pending, None)
        if step is None:
            break
        saved, report = fit_windows(step.windows, step.rule_index, step.rule_label,
                                    step.judged, step.context, rules, base=saved, store=store,
                                    truth=truth, expert_budget=remaining, params=params,
                                    seed=seed, started=started)
        if remaining is not None:
            remaining -= report.answered_by_oracle
        total = report if total is None else TrainReport(
            *(a + b for a, b in zip(astuple(total), astuple(report), strict=True)))
    if saved is None or total is None:
        raise DarkscopeError("no packets to train on")
    saved.info["last_update"] = total.as_dict()
    return saved, total
