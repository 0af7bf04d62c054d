"""What linking is expected to gain on a labelled split, and the `fuse` gate fitted to it.

Used by the preflight (`python -m inference.llm.calibrate_link`) and the bench. The inputs are
local-inference records with `gold`, some of whose spans carry the LLM's `llm_answer` (and
`llm_probs`): a sample of the spans a budget would send.

Expected F1 at a budget (`expected_f1`): the budget's threshold sends the most uncertain share
of the listed spans. Each answered span in it changes the entity counts by what its final label
adds over the local one (a true positive gained or lost, a predicted entity added or removed);
the answered spans stand for all the spans the budget sends, so their changes are scaled by
(spans sent) / (answered spans sent). With every sent span answered the scale is 1 and the
figure is the linked F1 itself.

The gate (`fit_fuser`): a logistic regression on `inference.fusion.gate_features` predicting
whether the LLM's answer is right, on the answered spans where it differs from the local label,
with out-of-fold probabilities (5 folds). Its cutoff is the one whose out-of-fold decisions give
the largest summed F1 gain over the budgets without a loss at any budget, and only when the
spans it switches are a significant win: switched spans the LLM gets right (w) and those the
local model had right (l) must satisfy w - l >= 2 sqrt(w + l) (a two-sigma sign test). Else
the gate abstains: `fuse` keeps every local label.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from inference.budget import threshold_for_budget
from inference.fusion import FEATURES, Fuser, gate_features

BUDGETS = (0.05, 0.1, 0.2, 0.5)
FOLDS = 5
MIN_ROWS = 20  # disagreements needed to fit a gate at all


@dataclass
class Answered:
    """One answered span: where it lies, its uncertainty, its gold label ("O" for none)."""

    span: dict
    gold: str

    def delta(self, label: str) -> tuple[int, int]:
        """(true positives, predicted entities) that `label` adds over the local label."""
        pred = self.span["pred"]
        tp = int(label == self.gold and label != "O") - int(pred == self.gold and pred != "O")
        return tp, int(label != "O") - int(pred != "O")


def gold_label(record: dict, span: dict) -> str:
    s, e = span["span"]
    return next((g[2] for g in record.get("gold") or [] if g[0] == s and g[1] == e), "O")


def local_counts(records: Sequence[dict]) -> tuple[int, int, int]:
    """(true positives, predicted entities, gold entities) of the local labels."""
    tp = n_pred = n_gold = 0
    for rec in records:
        gold = {(g[0], g[1]): g[2] for g in rec.get("gold") or []}
        n_gold += len(gold)
        preds = {(sp["span"][0], sp["span"][1]): sp["pred"] for sp in rec["entity"] if sp["pred"] != "O"}
        n_pred += len(preds)
        tp += sum(gold.get(key) == label for key, label in preds.items())
    return tp, n_pred, n_gold


def f1(tp: float, n_pred: float, n_gold: float) -> float:
    return 2 * tp / (n_pred + n_gold) if n_pred + n_gold else 0.0


def budget_thresholds(records: Sequence[dict], budgets: Sequence[float] = BUDGETS) -> dict[float, float]:
    uncertainties = [sp["uncertainty"] for rec in records for sp in rec["entity"]]
    return {b: threshold_for_budget(uncertainties, b) for b in budgets}


def expected_f1(records: Sequence[dict], answered: Sequence[Answered], threshold: float,
                choose: Callable[[Answered], str]) -> float:
    """The linked F1 expected at `threshold` when each sent span's final label is `choose(a)`."""
    tp, n_pred, n_gold = local_counts(records)
    sent = sum(sp["uncertainty"] > threshold for rec in records for sp in rec["entity"])
    inside = [a for a in answered if a.span["uncertainty"] > threshold]
    if not inside:
        return f1(tp, n_pred, n_gold)
    scale = sent / len(inside)
    d_tp, d_pred = np.sum([a.delta(choose(a)) for a in inside], axis=0)
    return f1(tp + scale * d_tp, n_pred + scale * d_pred, n_gold)


def override(a: Answered) -> str:
    return a.span["llm_answer"]


def gain_table(records: Sequence[dict], answered: Sequence[Answered], thresholds: dict[float, float],
               fuse: Callable[[Answered], str]) -> list[dict]:
    """Per budget: its threshold and the expected local, override and fuse F1."""
    local = f1(*local_counts(records))
    return [{"budget": b, "threshold": t, "local_f1": local,
             "override_f1": expected_f1(records, answered, t, override),
             "fuse_f1": expected_f1(records, answered, t, fuse)} for b, t in thresholds.items()]


def _significant(switched: Sequence[Answered]) -> bool:
    wins = sum(a.span["llm_answer"] == a.gold for a in switched)
    losses = sum(a.span["pred"] == a.gold for a in switched)
    return wins - losses >= 2 * math.sqrt(wins + losses) and wins > losses


def _logistic(x: np.ndarray, y: np.ndarray):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    model = LogisticRegression(C=1.0, max_iter=1000).fit((x - scaler.mean_) / scale, y)
    return scaler.mean_, scale, model


def fit_fuser(records: Sequence[dict], answered: Sequence[Answered], thresholds: dict[float, float],
              identity: Optional[dict] = None, seed: int = 0) -> tuple[Fuser, dict]:
    """The gate and what it was chosen on ({"rows", "cutoff", "out_of_fold": gain table})."""
    rows = [a for a in answered if a.span["llm_answer"] != a.span["pred"]]
    y = np.array([a.span["llm_answer"] == a.gold for a in rows], dtype=int)
    info = {"rows": len(rows), "llm_right_in_rows": int(y.sum())}
    if len(rows) < MIN_ROWS or y.min(initial=1) == y.max(initial=0) or min(y.sum(), len(y) - y.sum()) < 2:
        info["why"] = "too few disagreements of both kinds to fit a gate"
        if len(rows) and y.all() and _significant(rows):  # the LLM is right wherever it disagrees
            return Fuser([0.0] * len(FEATURES), [1.0] * len(FEATURES), [0.0] * len(FEATURES), 1.0, 0.5,
                         identity or {}), {**info, "why": "the LLM was right on every disagreement"}
        return Fuser.abstaining(identity), info
    x = np.array([gate_features(a.span) for a in rows])
    oof = np.zeros(len(rows))
    order = np.random.default_rng(seed).permutation(len(rows))
    for k in range(FOLDS):
        test = order[k::FOLDS]
        train = np.setdiff1d(order, test)
        if y[train].min() == y[train].max():
            oof[test] = y[train].mean()
            continue
        mean, scale, model = _logistic(x[train], y[train])
        oof[test] = model.predict_proba((x[test] - mean) / scale)[:, 1]
    p_of = {id(a.span): p for a, p in zip(rows, oof)}

    def decide_at(cutoff):
        return lambda a: a.span["llm_answer"] if p_of.get(id(a.span), -1.0) > cutoff else a.span["pred"]

    local = f1(*local_counts(records))
    best, best_gain = math.inf, 0.0
    for cutoff in sorted(set(np.round(oof, 6))):
        choose = decide_at(cutoff)
        gains = [expected_f1(records, answered, t, choose) - local for t in thresholds.values()]
        switched = [a for a in rows if p_of[id(a.span)] > cutoff]
        if min(gains) >= 0 and sum(gains) > best_gain and _significant(switched):
            best, best_gain = float(cutoff), sum(gains)
    info["cutoff"] = None if math.isinf(best) else best
    info["out_of_fold"] = gain_table(records, answered, thresholds, decide_at(best))
    if math.isinf(best):
        info["why"] = "no cutoff gains F1 on dev at every budget with a significant win"
        return Fuser.abstaining(identity), info
    mean, scale, model = _logistic(x, y)
    fuser = Fuser([float(v) for v in mean], [float(v) for v in scale], [float(v) for v in model.coef_[0]],
                  float(model.intercept_[0]), best, identity or {})
    return fuser, info
