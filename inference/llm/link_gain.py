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

The gate (`fit_fuser`): two logistic regressions on `inference.fusion.gate_features`, one for
whether the LLM's answer is right and one for whether the local label is, on the answered spans
where the two differ. Whether a budget links at all is chosen on their score, the difference of
the two probabilities (how much likelier the LLM is to be right), out of fold (5 folds). Per
budget, the starting choice is the paper's rule (every answer) where dev says it gains F1, else
keeping every local label; a cutoff of the score replaces it when its out-of-fold decisions gain
more F1 there and the spans whose decision it changes are a significant win: each such span adds
c = (true positives gained) - price * (predicted entities added) to F1 (up to a positive factor),
and sum c >= SIGNIFICANCE * sqrt(sum c^2) (`_significant`; entity for entity, the sign test
w - l >= SIGNIFICANCE * sqrt(w + l)). A budget where neither gains keeps the local labels:
linking abstains there (a run whose answers show the local model significantly weaker than on
dev, or whose own spans predict a significant win by the same test on expected contributions,
reopens it: `inference.fusion.Fuser.adapted`). A
budget whose choice stays the paper's rule takes every answer (unless a run differs from dev)
where that rule's own win over the local labels is significant by the same test; elsewhere, and
at a budget where a cutoff won, each span takes the LLM's answer where that raises the expected
F1 (`inference.fusion.expected_gain`, one more predicted entity priced at half the local F1 on
dev): the cutoff itself is kept only as a record, since the run's own answers move the
probabilities (inference/shift.py). The out-of-fold table scores those decisions.

With the gate goes its shift model (`fit_shift`, see inference/shift.py): P(local right) from
the local model's signals and P(LLM right) from the LLM's, over every answered span, the rate
at which two wrong labels coincide, the shift the agreement estimate finds on dev itself (with
its standard error) per budget, and dev's expected precision (the mean P(local right) over its
entities). Where dev closes every budget the gate keeps its models, so a run can reopen one.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from inference.budget import threshold_for_budget
from inference.fusion import Fuser, f1_contribution, gate_features
from inference.shift import LIMIT, Logit, ShiftModel, llm_features, local_features

BUDGETS = (0.05, 0.1, 0.2, 0.5)
FOLDS = 5
MIN_ROWS = 20  # disagreements needed to fit a gate at all
SIGNIFICANCE = 1.5  # standard errors the F1 contributions of a switched set must clear (`_significant`)
CUTOFFS = 101  # cutoffs tried: quantiles of the out-of-fold probabilities


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
        gold = {(g[0], g[1]): g[2] for g in rec.get("gold") or [] if g[2] != "O"}
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


class Split:
    """What expected F1 needs of a labelled split, counted once: the local counts and the
    listed spans' uncertainties."""

    def __init__(self, records: Sequence[dict]):
        self.counts = local_counts(records)
        self.uncertainties = np.sort([sp["uncertainty"] for rec in records for sp in rec["entity"]])

    def sent(self, threshold: float) -> int:
        return int(len(self.uncertainties) - np.searchsorted(self.uncertainties, threshold, side="right"))


def expected_f1(records: Sequence[dict] | Split, answered: Sequence[Answered], threshold: float,
                choose: Callable[[Answered], str]) -> float:
    """The linked F1 expected at `threshold` when each sent span's final label is `choose(a)`."""
    split = records if isinstance(records, Split) else Split(records)
    tp, n_pred, n_gold = split.counts
    sent = split.sent(threshold)
    inside = [a for a in answered if a.span["uncertainty"] > threshold]
    if not inside:
        return f1(tp, n_pred, n_gold)
    scale = sent / len(inside)
    d_tp, d_pred = np.sum([a.delta(choose(a)) for a in inside], axis=0)
    return f1(tp + scale * d_tp, n_pred + scale * d_pred, n_gold)


def override(a: Answered) -> str:
    return a.span["llm_answer"]


def gain_table(records: Sequence[dict] | Split, answered: Sequence[Answered], thresholds: dict[float, float],
               fuse: Callable[[Answered, float], str]) -> list[dict]:
    """Per budget: its threshold and the expected local, override and fuse F1 (`fuse(a, threshold)`)."""
    split = records if isinstance(records, Split) else Split(records)
    local = f1(*split.counts)
    return [{"budget": b, "threshold": t, "local_f1": local,
             "override_f1": expected_f1(split, answered, t, override),
             "fuse_f1": expected_f1(split, answered, t, lambda a, t=t: fuse(a, t))} for b, t in thresholds.items()]


def _significant(changed: Sequence[Answered], old: Callable[[Answered], str], new: Callable[[Answered], str],
                 price: float) -> bool:
    """Whether moving the `changed` spans' final labels from `old(a)` to `new(a)` is a significant
    F1 win: each span contributes c (`inference.fusion.f1_contribution`: the true positives gained
    less `price` per predicted entity added; 0 where the label does not move), and the sum must
    clear SIGNIFICANCE standard errors of a sum of no expected gain: sum c >= SIGNIFICANCE *
    sqrt(sum c^2). Where each change swaps a wrong label for a right one or back, entity for
    entity, c is +1 or -1 and this is the sign test w - l >= SIGNIFICANCE * sqrt(w + l); where the
    local F1 is low, a right entity added (1 - price) outweighs a wrong one added (-price), and it
    counts so."""
    contributions = [f1_contribution(new(a), old(a), a.gold, price) for a in changed]
    total = math.fsum(contributions)
    return total > 0 and total >= SIGNIFICANCE * math.sqrt(math.fsum(c * c for c in contributions))


def _logistic(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(mean, scale, coefficients, intercept) of a standardised logistic regression of y on x; a
    constant y gives zero coefficients and the (clipped) log-odds of its rate."""
    from sklearn.linear_model import LogisticRegression

    mean = x.mean(axis=0)
    scale = np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
    if y.min() == y.max():
        rate = min(max(float(y.mean()), 0.01), 0.99)
        return mean, scale, np.zeros(x.shape[1]), math.log(rate / (1 - rate))
    model = LogisticRegression(C=1.0, max_iter=1000).fit((x - mean) / scale, y)
    return mean, scale, model.coef_[0], float(model.intercept_[0])


def _advantage(x: np.ndarray, fitted: tuple, fitted_local: tuple) -> np.ndarray:
    """P(the LLM's answer is right) - P(the local label is right), from the two fits."""
    def _p(f: tuple) -> np.ndarray:
        mean, scale, coef, intercept = f
        return 1.0 / (1.0 + np.exp(-np.clip(intercept + ((x - mean) / scale) @ coef, -60, 60)))
    return _p(fitted) - _p(fitted_local)


def fit_fuser(records: Sequence[dict], answered: Sequence[Answered], thresholds: dict[float, float],
              identity: Optional[dict] = None, seed: int = 0) -> tuple[Fuser, dict]:
    """The gate and what it was chosen on ({"rows", "budgets", "cutoffs", "out_of_fold": gain table})."""
    rows = [a for a in answered if a.span["llm_answer"] != a.span["pred"]]
    y = np.array([a.span["llm_answer"] == a.gold for a in rows], dtype=int)
    y_local = np.array([a.span["pred"] == a.gold for a in rows], dtype=int)
    info = {"rows": len(rows), "llm_right_in_rows": int(y.sum()), "local_right_in_rows": int(y_local.sum())}
    if len(rows) < MIN_ROWS:
        info["why"] = "too few disagreements to fit a gate"
        return Fuser.abstaining(identity), info
    split = Split(records)
    local = f1(*split.counts)
    x = np.array([gate_features(a.span) for a in rows])
    oof = np.zeros(len(rows))
    taken = set()  # the rows whose out-of-fold expected-gain decision takes the LLM's answer
    order = np.random.default_rng(seed).permutation(len(rows))
    for k in range(FOLDS):
        test = order[k::FOLDS]
        train = np.setdiff1d(order, test)
        fitted, fitted_local = _logistic(x[train], y[train]), _logistic(x[train], y_local[train])
        oof[test] = _advantage(x[test], fitted, fitted_local)
        gate = _gate(fitted, fitted_local, [[0.0, "gate"]], local / 2)
        taken |= {id(rows[i].span) for i in test if gate.choose(rows[i].span) != rows[i].span["pred"]}
    p_of = {id(a.span): p for a, p in zip(rows, oof)}

    def take(a: Answered, cutoff: Optional[float]) -> bool:
        return cutoff is not None and p_of.get(id(a.span), -1.0) > cutoff

    def label(cutoff: Optional[float]) -> Callable[[Answered], str]:
        return lambda a: a.span["llm_answer"] if take(a, cutoff) else a.span["pred"]

    candidates = [-math.inf, *sorted(set(np.round(np.quantile(oof, np.linspace(0, 1, CUTOFFS)), 6)))]
    choices, recorded = {}, {}  # per budget: one of fusion.CHOICES, and the gate's cutoff (a record)
    for b, t in thresholds.items():
        gain = lambda c: expected_f1(split, answered, t, label(c)) - local  # noqa: E731
        # the paper's rule where dev says it gains, else none; a gate cutoff only when its decisions
        # differ from that choice's by a significant win
        every = gain(-math.inf)
        best, best_gain = (-math.inf, every) if every > 0 else (None, 0.0)
        sent = [a for a in rows if a.span["uncertainty"] > t]  # a span whose label does not move adds 0
        for cutoff in candidates[1:]:
            g = gain(cutoff)
            if g > best_gain and _significant(sent, label(best), label(cutoff), local / 2):
                best, best_gain = cutoff, g
        # every answer blindly only where its own win over the local labels is significant too
        every_sure = best == -math.inf and _significant(sent, label(None), label(-math.inf), local / 2)
        choices[t] = "keep" if best is None else "every" if every_sure else "gate"
        recorded[t] = best if best is not None and math.isfinite(best) else None  # JSON has no -inf
    info["budgets"] = {str(b): choices[t] for b, t in thresholds.items()}  # what dev chose
    info["cutoffs"] = {str(b): recorded[t] for b, t in thresholds.items()}  # a record
    # what a run does: at a budget that links, the expected-gain decisions (out of fold here)
    info["out_of_fold"] = gain_table(split, answered, thresholds, lambda a, t: a.span["llm_answer"]
                                     if choices[t] == "every" or (choices[t] == "gate" and id(a.span) in taken)
                                     else a.span["pred"])
    if all(c == "keep" for c in choices.values()):
        info["why"] = "no cutoff gains F1 on dev with a significant win at any budget"
    fuser = _gate(_logistic(x, y), _logistic(x, y_local), sorted([t, c] for t, c in choices.items()), local / 2,
                  identity=identity or {}, shift=asdict(fit_shift(answered, thresholds, records)))
    return fuser, info


def _gate(fitted: tuple, fitted_local: tuple, budgets: list, price: float, **extra) -> Fuser:
    """A `Fuser` from the two fits (the same features, so the same mean and scale)."""
    llm, local = _plain(fitted), _plain(fitted_local)
    return Fuser(llm.mean, llm.scale, llm.coef, llm.intercept, budgets, coef_local=local.coef,
                 intercept_local=local.intercept, price=price, **extra)


def _plain(fitted: tuple) -> Logit:
    mean, scale, coef, intercept = fitted
    return Logit([float(v) for v in mean], [float(v) for v in scale], [float(v) for v in coef], float(intercept))


def fit_shift(answered: Sequence[Answered], thresholds: dict[float, float], records: Sequence[dict]) -> ShiftModel:
    """The shift model of `inference.shift`, fitted on every answered dev span of `records`."""
    spans = [a.span for a in answered]
    local_right = np.array([a.span["pred"] == a.gold for a in answered], dtype=int)
    llm_right = np.array([a.span["llm_answer"] == a.gold for a in answered], dtype=int)
    both_wrong = [a for a, lr, mr in zip(answered, local_right, llm_right) if not lr and not mr]
    agree = sum(a.span["llm_answer"] == a.span["pred"] for a in both_wrong)
    model = ShiftModel(_plain(_logistic(np.array([local_features(s) for s in spans]), local_right)),
                       _plain(_logistic(np.array([llm_features(s) for s in spans]), llm_right)),
                       (agree + 1) / (len(both_wrong) + 4), [])  # prior: 1 in 4 (a few labels)
    for t in sorted(thresholds.values()):
        found = model.estimate([s for s in spans if s["uncertainty"] > t])
        # where dev cannot tell, the reference is 0 with an error as wide as the shifts allowed
        model.reference.append([t, 0.0, LIMIT] if found is None else [t, found[0], min(found[1], LIMIT)])
    model.precision = model.expected_precision(records) or None
    return model
