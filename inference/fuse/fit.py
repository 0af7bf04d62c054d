"""Fitting the gate on a labelled dev split whose sent spans carry the LLM's answers.

The three-outcome model is fitted on the answered spans where the answer differs from the local
label. Per budget, dev chooses among keep / every / span by each rule's F1 contributions on dev
(the span rule decided out of fold), with one significance test (`gate.significant`). The shift
model (`shift.py`) is fitted on every answered span.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from inference.budget import threshold_for_budget
from inference.fuse.gate import Gate, f1_contribution, significant
from inference.fuse.model import Linear, gate_features, llm_features, local_features
from inference.fuse.shift import LIMIT, ShiftModel

BUDGETS = (0.05, 0.1, 0.2, 0.5)  # the shares of listed spans the preflight scores
FOLDS = 5  # the span rule is scored out of fold
MIN_ROWS = 20  # disagreements needed to fit a gate at all: fewer say little about the LLM


@dataclass
class Answered:
    """One answered dev span and its gold label ("O" for none)."""

    span: dict
    gold: str

    def outcome(self) -> int:
        """The index in `model.OUTCOMES`: the LLM right, the local label right, neither."""
        return 0 if self.span["llm_answer"] == self.gold else 1 if self.span["pred"] == self.gold else 2


def gold_label(record: dict, span: dict) -> str:
    s, e = span["span"]
    return next((g[2] for g in record.get("gold") or [] if g[0] == s and g[1] == e), "O")


def local_counts(records: Sequence[dict]) -> tuple[int, int, int]:
    """(true positives, predicted entities, gold entities) of the local labels."""
    tp = n_pred = n_gold = 0
    for rec in records:
        gold = {(g[0], g[1]): g[2] for g in rec.get("gold") or [] if g[2] != "O"}
        preds = {(sp["span"][0], sp["span"][1]): sp["pred"] for sp in rec["entity"] if sp["pred"] != "O"}
        n_gold, n_pred = n_gold + len(gold), n_pred + len(preds)
        tp += sum(gold.get(key) == label for key, label in preds.items())
    return tp, n_pred, n_gold


def f1(tp: float, n_pred: float, n_gold: float) -> float:
    return 2 * tp / (n_pred + n_gold) if n_pred + n_gold else 0.0


def budget_thresholds(records: Sequence[dict], budgets: Sequence[float] = BUDGETS) -> dict[float, float]:
    uncertainties = [sp["uncertainty"] for rec in records for sp in rec["entity"]]
    return {b: threshold_for_budget(uncertainties, b) for b in budgets}


class Split:
    """A labelled split's local counts and listed uncertainties, counted once."""

    def __init__(self, records: Sequence[dict]):
        self.counts = local_counts(records)
        self.uncertainties = np.sort([sp["uncertainty"] for rec in records for sp in rec["entity"]])

    def sent(self, threshold: float) -> int:
        return int(len(self.uncertainties) - np.searchsorted(self.uncertainties, threshold, side="right"))


def expected_f1(split: Split, answered: Sequence[Answered], threshold: float, choose: Callable[[Answered], str]) -> float:
    """The F1 expected at `threshold` when each sent span's label is `choose(a)`: the answered
    spans stand for every span sent, their changes scaled by (spans sent) / (answered sent)."""
    tp, n_pred, n_gold = split.counts
    inside = [a for a in answered if a.span["uncertainty"] > threshold]
    if not inside:
        return f1(tp, n_pred, n_gold)
    scale = split.sent(threshold) / len(inside)
    d_tp = sum((choose(a) == a.gold != "O") - (a.span["pred"] == a.gold != "O") for a in inside)
    d_pred = sum((choose(a) != "O") - (a.span["pred"] != "O") for a in inside)
    return f1(tp + scale * d_tp, n_pred + scale * d_pred, n_gold)


def gain_table(split: Split, answered: Sequence[Answered], thresholds: dict[float, float],
               fuse: Callable[[Answered, float], str]) -> list[dict]:
    """Per budget: its threshold and the expected local, override and fuse F1."""
    return [{"budget": b, "threshold": t, "local_f1": f1(*split.counts),
             "override_f1": expected_f1(split, answered, t, lambda a: a.span["llm_answer"]),
             "fuse_f1": expected_f1(split, answered, t, lambda a, t=t: fuse(a, t))} for b, t in thresholds.items()]


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
    y = np.array([a.outcome() for a in rows], dtype=int)
    info: dict = {"rows": len(rows), "llm_right_in_rows": int((y == 0).sum()),
                  "local_right_in_rows": int((y == 1).sum())}
    if len(rows) < MIN_ROWS:
        info["why"] = f"only {len(rows)} disagreements with the local label on dev (a gate needs {MIN_ROWS})"
        info["out_of_fold"] = gain_table(split, answered, thresholds, lambda a, t: a.span["pred"])
        return Gate(None, sorted([t, "keep"] for t in thresholds.values()), price, identity=identity or {}), info
    x = np.array([gate_features(a.span) for a in rows])
    taken = np.zeros(len(rows), dtype=bool)  # the span rule's out-of-fold decisions
    order = np.random.default_rng(seed).permutation(len(rows))
    for k in range(FOLDS):
        test = order[k::FOLDS]
        fold = Gate(fit_linear(x[np.setdiff1d(order, test)], y[np.setdiff1d(order, test)], 3), [], price)
        for i in test:
            taken[i] = fold.label(rows[i].span, "span") != rows[i].span["pred"]
    contribution = np.array([f1_contribution(a.span["llm_answer"], a.span["pred"], a.gold, price) for a in rows])
    choices = {}
    for t in thresholds.values():
        sent = np.array([a.span["uncertainty"] > t for a in rows], dtype=bool)
        choices[t], best = "keep", 0.0
        for choice, takes in (("every", sent), ("span", sent & taken)):
            c = contribution[takes]
            if c.sum() > best and significant(c.sum(), (c * c).sum()):
                choices[t], best = choice, c.sum()
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
    local_right = np.array([a.span["pred"] == a.gold for a in answered], dtype=int)
    llm_right = np.array([a.span["llm_answer"] == a.gold for a in answered], dtype=int)
    both_wrong = [a for a, lr, mr in zip(answered, local_right, llm_right) if not lr and not mr]
    agree = sum(a.span["llm_answer"] == a.span["pred"] for a in both_wrong)
    model = ShiftModel(fit_linear(np.array([local_features(s) for s in spans]), local_right, 2),
                       fit_linear(np.array([llm_features(s) for s in spans]), llm_right, 2),
                       (agree + 1) / (len(both_wrong) + 4), [])  # prior: 1 in 4 (a few labels)
    for t in sorted(thresholds.values()):
        found = model.estimate([s for s in spans if s["uncertainty"] > t])
        # where dev cannot tell, its shift is 0 with an error as wide as the shifts allowed
        model.reference.append([t, 0.0, LIMIT] if found is None else [t, found[0], min(found[1], LIMIT)])
    return model
