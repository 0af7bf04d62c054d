"""Fitting the gate on a labelled dev split whose sent spans carry the LLM's answers: the
three-outcome model on the disagreements, dev's choice per budget, and the shift model."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from inference.fuse.gate import Gate, best_choice, f1_contribution
from inference.fuse.model import Linear, gate_features, llm_features, local_features
from inference.fuse.shift import LIMIT, ShiftModel
from inference.reports.dev_gain import Answered, Split, f1, gain_table

FOLDS = 5  # the span rule is scored out of fold
MIN_ROWS = 20  # disagreements needed to fit a gate at all: fewer say little about the LLM


def fit_linear(x: np.ndarray, y: np.ndarray, classes: int) -> Linear:
    """A standardised logistic regression of y (0 .. classes - 1) on x: one score row for two
    classes (the log-odds of 1), one per class for more. Each class also gets a prior row at
    the mean of weight 1e-3, so that a class never seen keeps a finite, small probability."""
    from sklearn.linear_model import LogisticRegression

    mean, std = x.mean(axis=0), x.std(axis=0)
    scale = np.where(std > 0, std, 1.0)
    xs = np.vstack([(x - mean) / scale, np.zeros((classes, x.shape[1]))])
    ys = np.concatenate([y, np.arange(classes)])
    weight = np.concatenate([np.ones(len(y)), np.full(classes, 1e-3)])
    model = LogisticRegression(C=1.0, max_iter=1000).fit(xs, ys, sample_weight=weight)
    return Linear(mean.tolist(), scale.tolist(), model.coef_.tolist(), model.intercept_.tolist())


def fit_gate(records: Sequence[dict], answered: Sequence[Answered], thresholds: dict[float, float],
             identity: Optional[dict] = None, seed: int = 0) -> tuple[Gate, dict]:
    """The gate, and what it was chosen on ({"rows", ..., "budgets", "out_of_fold": gain table})."""
    split = Split(records)
    price = f1(*split.counts) / 2
    rows = [a for a in answered if a.span["llm_answer"] != a.span["pred"]]
    # the index in `model.OUTCOMES`: the LLM right, the local label right, neither
    y = np.array([0 if a.span["llm_answer"] == a.gold else 1 if a.span["pred"] == a.gold else 2 for a in rows])
    info: dict = {"rows": len(rows), "llm_right_in_rows": int((y == 0).sum()),
                  "local_right_in_rows": int((y == 1).sum())}
    if len(rows) < MIN_ROWS:
        info["why"] = f"only {len(rows)} disagreements with the local label on dev (a gate needs {MIN_ROWS})"
        info["out_of_fold"] = gain_table(split, answered, thresholds, lambda a, t: a.span["pred"])
        return Gate(None, [], price, identity=identity or {}), info  # no budgets: keep everywhere
    x = np.array([gate_features(a.span) for a in rows])
    taken = np.zeros(len(rows), dtype=bool)  # the span rule's out-of-fold decisions
    order = np.random.default_rng(seed).permutation(len(rows))
    for k in range(FOLDS):
        test = order[k::FOLDS]
        train = np.setdiff1d(order, test)
        fold = Gate(fit_linear(x[train], y[train], 3), [], price)
        taken[test] = [fold.label(rows[i].span, "span") != rows[i].span["pred"] for i in test]
    contribution = np.array([f1_contribution(a.span["llm_answer"], a.span["pred"], a.gold, price) for a in rows])
    choices = {}
    for t in thresholds.values():
        sent = np.array([a.span["uncertainty"] > t for a in rows], dtype=bool)
        rules = {"every": contribution[sent], "span": contribution[sent & taken]}
        choices[t] = best_choice({rule: (float(c.sum()), float((c * c).sum())) for rule, c in rules.items()})
    info["budgets"] = {str(b): choices[t] for b, t in thresholds.items()}
    taken_ids = {id(a.span) for a, took in zip(rows, taken) if took}
    info["out_of_fold"] = gain_table(split, answered, thresholds, lambda a, t: a.span["llm_answer"] if choices[t] == "every"
                                     or (choices[t] == "span" and id(a.span) in taken_ids) else a.span["pred"])
    gate = Gate(fit_linear(x, y, 3), sorted([t, c] for t, c in choices.items()), price,
                fit_shift(answered, thresholds), identity or {})
    return gate, info


def fit_shift(answered: Sequence[Answered], thresholds: dict[float, float]) -> ShiftModel:
    """The shift model, fitted on every answered dev span, with dev's own shift per budget."""
    spans = [a.span for a in answered]
    local_right = np.array([s["pred"] == a.gold for s, a in zip(spans, answered)], dtype=int)
    llm_right = np.array([s["llm_answer"] == a.gold for s, a in zip(spans, answered)], dtype=int)
    agree = [s["llm_answer"] == s["pred"] for s, a in zip(spans, answered) if a.gold not in (s["pred"], s["llm_answer"])]
    model = ShiftModel(fit_linear(np.array([local_features(s) for s in spans]), local_right, 2),
                       fit_linear(np.array([llm_features(s) for s in spans]), llm_right, 2),
                       (sum(agree) + 1) / (len(agree) + 4), [])  # prior: 1 in 4 (a few labels)
    for t in sorted(thresholds.values()):
        found = model.estimate([s for s in spans if s["uncertainty"] > t])
        # where dev cannot tell, its shift is 0 with an error as wide as the shifts allowed
        model.reference.append([t, 0.0, LIMIT] if found is None else [t, found[0], min(found[1], LIMIT)])
    return model
