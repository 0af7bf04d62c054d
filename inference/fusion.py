"""How a sent span's final label combines the local label and the LLM's answer (`--combine`).

    override   the paper's rule: the LLM's answer replaces the local label.
    fuse       a small gate fitted on the dev split (`python -m inference.llm.calibrate_link`)
               decides per span whether to take the LLM's answer or keep the local label, from
               what both models say of the span: the local uncertainty and confidence, whether
               the span is a candidate (tagged O), the LLM's probability of its answer and of the
               local label (`llm_probs`; without them, the answer alone), and which of the two
               is "O": it takes the answer where that raises the expected F1. Where dev says the
               LLM does not pay, the gate never takes it: linking abstains; where dev finds no
               gate decision better than the paper's rule, it takes every answer.

The gate is two logistic regressions (the LLM right, the local label right) kept as plain
numbers (`Fuser`), so loading it runs no code. It reads no gold label: `answer` and `gold` are
never among its inputs.

On text unlike dev (typos, unseen names, another domain) the local model is right less often
than dev taught the gate; `Fuser.adapted` moves the gate's trust in it by the shift that
`inference.shift` estimates from how often the LLM agrees with it on the run's sent spans (no
gold read) and prices an added entity at the run's expected F1 instead of dev's. A run whose
shift lies two standard errors or more from dev's differs from dev: its spans are decided by the
shift model's own outcomes rather than the dev-fitted regressions. A budget dev closed links on
a run where the local model is two standard errors weaker than on dev, or where the run's own
spans predict a significant win (`Fuser.win_test`: dev's test on expected contributions to
F1, read with the local model stronger than the run's shift says, by two of its standard
errors): another domain sends harder spans at the same budget, and wins where dev's did not.
Each final label then depends on the run's answers together: the entry points decide every sent
span again once all are answered (`inference.llm.link_output.settle_fused`).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Optional, Sequence

from inference.shift import Logit, ShiftModel, llm_features, local_features, sent_answered, sigmoid
from utils.versioned_json import read_versioned, write_atomic

COMBINE = ("override", "fuse")
FORMAT = "linkner-link-calibration/5"
OLDER = "linkner-link-calibration/"  # the prefix every version of this file carries
DIFFERS_SIGMAS = 2.0  # a run whose shift lies this many standard errors from dev's differs from dev
OPEN_SIGMAS = 2.0  # a budget dev closed opens at this many sigmas: the run's shift, or its predicted win
CAUTION = 2.0  # the predicted win test reads the local model this many standard errors of the shift stronger
CHOICES = ("keep", "gate", "every")  # per budget: keep the local labels, the gate decides, take every answer
FEATURES = ("uncertainty", "confidence", "candidate", "llm_p_answer", "llm_p_pred", "llm_has_probs",
            "answer_is_o", "pred_is_o")


def gate_features(span: dict) -> list[float]:
    """The gate's inputs for a span with an answer (`FEATURES`): the shift model's local and LLM
    signals, and the LLM's probability of the local label; gold-free by construction."""
    uncertainty, confidence, pred_is_o = local_features(span)
    p_answer, has_probs, answer_is_o = llm_features(span)
    probs = span.get("llm_probs")
    p_pred = float(probs.get(span["pred"], 0.0)) if probs else float(span["llm_answer"] == span["pred"])
    return [uncertainty, confidence, pred_is_o, p_answer, p_pred, has_probs, answer_is_o, pred_is_o]


def f1_contribution(new: str, old: str, gold: Optional[str], price: float) -> float:
    """What replacing the label `old` by `new` adds to F1 on a span whose gold label is `gold`
    (None: neither label), up to a positive factor: the true positives gained less `price` (F1 / 2)
    per predicted entity added (see `expected_gain`)."""
    gained = (new == gold and new != "O") - (old == gold and old != "O")
    return gained - price * ((new != "O") - (old != "O"))


def expected_gain(p_llm: float, p_local: float, answer: str, pred: str, price: float) -> float:
    """What taking the LLM's answer instead of the local label adds to F1, up to a positive
    factor: with F1 = 2 TP / (P + G), a change of dTP true positives and dP predicted entities
    moves it by 2 (dTP - F1 / 2 * dP) / (P + G). Here dTP is expected (the answer right, an
    entity gained; the local label right, one lost) and `price` is F1 / 2."""
    d_tp = p_llm * (answer != "O") - p_local * (pred != "O")
    return d_tp - price * ((answer != "O") - (pred != "O"))


@dataclass
class Fuser:
    """The fitted gate. At the budget whose dev threshold is nearest the run's, dev chose (`budgets`:
    [threshold, choice] pairs) to keep the local labels ("keep": linking abstains there unless the
    run opens it, `adapted`), to take every answer ("every": the paper's rule, where it won
    significantly on dev and no gate decision beat it), or to let the gate decide ("gate"): take the LLM's
    answer when that raises the expected F1 (`expected_gain`, `price` = half the local F1 on dev,
    `run_price` the run's). A run that differs from dev, or opens a budget, is decided by the
    expected F1 whatever dev chose."""

    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    budgets: list[list]  # [dev threshold, one of CHOICES], sorted by threshold
    identity: dict = field(default_factory=dict)  # the LLM and prompt it was fitted for
    report: dict = field(default_factory=dict)  # what calibration measured (for people, not read)
    coef_local: list[float] = field(default_factory=lambda: [0.0] * len(FEATURES))  # P(the local label is right)
    intercept_local: float = 0.0
    shift: Optional[dict] = None  # `inference.shift.ShiftModel` as plain numbers; None: never adapted
    price: float = 0.5  # half the local F1 on dev: what one more predicted entity costs in F1
    delta: float = 0.0  # the shift `adapted` applies (a run's, never saved)
    shift_sigmas: float = 0.0  # a run's, never saved: how far its shift lies from dev's (`adapted`)
    run_price: Optional[float] = None  # a run's, never saved: `price` for the run's expected precision
    predicts_win: bool = False  # a run's, never saved: its spans predict a significant win where dev closed the budget

    @classmethod
    def abstaining(cls, identity: Optional[dict] = None, report: Optional[dict] = None) -> "Fuser":
        n = len(FEATURES)
        return cls([0.0] * n, [1.0] * n, [0.0] * n, 0.0, [], identity or {}, report or {})

    @property
    def abstains(self) -> bool:
        return all(choice == "keep" for _, choice in self.budgets)

    def choice(self, threshold: Optional[float]) -> str:
        """What dev chose at the budget whose dev threshold is nearest `threshold` (`CHOICES`)."""
        if not self.budgets:
            return "keep"
        if threshold is None or not math.isfinite(threshold):
            return self.budgets[0][1]  # the largest budget's (the lowest threshold)
        return min(self.budgets, key=lambda pair: abs(pair[0] - threshold))[1]

    def links(self, threshold: Optional[float]) -> bool:
        """Whether dev lets the budget whose dev threshold is nearest `threshold` link."""
        return self.choice(threshold) != "keep"

    def _p(self, coef: list[float], intercept: float, features: list[float]) -> float:
        return sigmoid(Logit(self.mean, self.scale, coef, intercept).z(features))

    def outcomes(self, span: dict) -> tuple[float, float]:
        """(P(the LLM's answer is right), P(the local label is right)) for a span where the two
        differ: the gate's two regressions, "neither" taking the rest, normalised.

        Adapted (`delta` != 0): where the two disagree, each model is right or neither is, with
        odds a(1 - l) : l(1 - a) : (1 - a)(1 - l)(1 - c) for the LLM's accuracy a and the local
        model's l. Moving l to l' (its log-odds by `delta`) scales them by (1 - l') / (1 - l),
        l' / l and (1 - l') / (1 - l): the gate's three probabilities are reweighted so, with l
        from the shift model's dev fit of P(local right). On a run that differs from dev
        (`differs_from_dev`) the dev-fitted regressions no longer describe it, and the three odds
        come from the shift model itself, the one the run's shift was measured with."""
        if self.differs_from_dev:
            return self.shift_model.outcomes(span, self.delta)
        x = gate_features(span)
        p_llm, p_local = self._p(self.coef, self.intercept, x), self._p(self.coef_local, self.intercept_local, x)
        neither = max(0.0, 1.0 - p_llm - p_local)
        if self.delta != 0.0 and self.shift is not None:
            l_dev = self.shift_model.p_local(span)
            l_run = sigmoid(math.log(l_dev / (1.0 - l_dev)) + self.delta)
            right, wrong = l_run / l_dev, (1.0 - l_run) / (1.0 - l_dev)
            p_llm, p_local, neither = p_llm * wrong, p_local * right, neither * wrong
        total = p_llm + p_local + neither
        return p_llm / total, p_local / total

    @property
    def differs_from_dev(self) -> bool:
        """Whether the run's shift lies `DIFFERS_SIGMAS` standard errors or more from dev's."""
        return self.shift is not None and abs(self.shift_sigmas) >= DIFFERS_SIGMAS

    @property
    def opened(self) -> bool:
        """Whether the run opens a budget dev closed: its answers show the local model
        significantly weaker than on dev, or its own spans predict a significant win
        (`predicts_win`)."""
        return self.shift is not None and (self.shift_sigmas >= OPEN_SIGMAS or self.predicts_win)

    def choose(self, span: dict, threshold: Optional[float] = None) -> str:
        """The final label of a sent span with an answer, sent at `threshold`: the local label
        where dev says linking does not pay at that budget and the run did not open it (`opened`);
        the answer where dev chose every answer there and the run does not differ from dev
        (`differs_from_dev`); else the label of the larger expected F1 (`expected_gain`)."""
        answer, pred = span["llm_answer"], span["pred"]
        choice = self.choice(threshold)
        if answer == pred or (choice == "keep" and not self.opened):
            return pred
        if choice == "every" and not self.differs_from_dev:
            return answer
        return answer if expected_gain(*self.outcomes(span), answer, pred, self.price_now) > 0 else pred

    @property
    def price_now(self) -> float:
        """The price of an added entity on this run (`run_price`), dev's where not adapted."""
        return self.price if self.run_price is None else self.run_price

    @functools.cached_property
    def shift_model(self) -> ShiftModel:
        return ShiftModel.from_dict(self.shift)

    def adapted(self, records: Sequence[dict], threshold: float) -> "Fuser":
        """The gate for a run whose records (their spans answered above `threshold`) are `records`:
        its trust in the local label moved by the estimated shift (`delta`), an added entity
        priced at half the F1 the run's expected precision implies (`run_price`: dev's F1 scaled
        by the run's expected precision over dev's), and the run's shift in standard errors from
        dev's (`shift_sigmas`, `ShiftModel.measure`): from `DIFFERS_SIGMAS` on, the run differs
        from dev (`outcomes` then reads the shift model); from `OPEN_SIGMAS` below, or where the
        run's spans predict a significant win (`predicts_win`, `win_test`), a budget dev closed
        opens (`opened`)."""
        if self.shift is None:
            return dataclasses.replace(self, delta=0.0, shift_sigmas=0.0, run_price=self.price, predicts_win=False)
        model, spans = self.shift_model, sent_answered(records, threshold)
        delta, sigmas, error = model.measure(spans, threshold)
        price = self.price
        if model.precision:
            price = min(0.5, self.price * model.expected_precision(records, threshold, delta) / model.precision)
        run = dataclasses.replace(self, delta=delta, shift_sigmas=sigmas, run_price=price, predicts_win=False)
        if self.links(threshold):  # the win test only opens a budget dev closed
            return run
        return dataclasses.replace(run, predicts_win=run.win_test(spans, error))

    def win_test(self, spans: Sequence[dict], error: float) -> bool:
        """Whether the run's sent, answered `spans` predict that taking the answers wins, by the
        test dev's budgets pass (`link_gain._significant`) on expected contributions: over the
        spans where the gate takes the answer, each adds c to F1 (up to a positive factor: a true
        positive gained, less `price_now` per predicted entity added), and the sum of their
        expectations (`expected_gain`) must reach OPEN_SIGMAS * sqrt(the sum of E[c^2]). Where
        answer and local label are both entities this is the sign test W - L >= OPEN_SIGMAS *
        sqrt(W + L) on expected counts (W the sum of P(the answer is right), L of P(the local
        label is right)). The probabilities are read with the local model `CAUTION` standard
        errors of the shift (`error`) stronger than estimated, so that a run whose shift is
        uncertain, or unmeasured (an LLM that cannot tell: `error` inf), never opens on it. Dev
        closes a budget when its out-of-fold gain is not significant; a run's spans can be harder
        than dev's at the same budget (another domain sends spans the local model is less sure
        of) and win where dev's did not."""
        if not math.isfinite(error):
            return False
        cautious = dataclasses.replace(self, delta=self.delta + CAUTION * error)
        price = self.price_now
        gain = square = 0.0
        for span in spans:
            answer, pred = span["llm_answer"], span["pred"]
            if answer == pred:
                continue
            p_llm, p_local = cautious.outcomes(span)
            mean = expected_gain(p_llm, p_local, answer, pred, price)
            if mean > 0:  # the contribution when the answer is right, the local label is, neither is
                right, wrong, neither = (f1_contribution(answer, pred, gold, price) for gold in (answer, pred, None))
                gain += mean
                square += p_llm * right ** 2 + p_local * wrong ** 2 + (1.0 - p_llm - p_local) * neither ** 2
        return gain > 0 and gain >= OPEN_SIGMAS * math.sqrt(square)

    def save(self, path: str) -> str:
        """Write the gate to `path` (what `adapted` sets for a run is not part of it)."""
        data = asdict(self)
        del data["delta"], data["shift_sigmas"], data["run_price"], data["predicts_win"]  # a run's, not the calibration's
        return write_atomic(path, {"format": FORMAT, **data}, indent=1)

    @classmethod
    def load(cls, path: str) -> "Fuser":
        """The gate in `path`; a ValueError naming the file when it is damaged or foreign."""
        try:
            data = read_versioned(path, FORMAT, "link calibration")
        except ValueError:
            older = older_format(path)
            if older:
                raise ValueError(f"{path}: a link calibration of an older format ({older}); rerun "
                                 "python -m inference.llm.calibrate_link (it replaces the file)") from None
            raise
        try:
            numbers = [data[key] for key in ("mean", "scale", "coef")]
            local = data["coef_local"]
            if len(local) != len(FEATURES) or not all(isinstance(x, (int, float)) for x in local):
                raise ValueError
            if any(len(v) != len(FEATURES) or not all(isinstance(x, (int, float)) for x in v) for v in numbers):
                raise ValueError
            budgets = [[float(t), c] for t, c in data["budgets"]]
            if any(c not in CHOICES for _, c in budgets):
                raise ValueError
            if not isinstance(data["identity"], dict) or any(s == 0 for s in data["scale"]):
                raise ValueError
            shift = data.get("shift")
            if shift is not None:
                ShiftModel.from_dict(shift)
            price = data["price"]
            if isinstance(price, bool) or not (isinstance(price, (int, float)) and 0.0 <= price <= 0.5):
                raise ValueError
            return cls(*numbers, float(data["intercept"]), sorted(budgets), data["identity"], data.get("report") or {},
                       [float(x) for x in local], float(data["intercept_local"]), shift, float(price))
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}: a damaged link calibration (expected {', '.join(FEATURES)} weights, "
                             "the budgets, the price and the LLM's identity); rerun python -m inference.llm.calibrate_link"
                             ) from None


def older_format(path: str) -> Optional[str]:
    """The format of an older version of this file at `path`, or None."""
    try:
        with open(path, encoding="utf-8") as f:
            fmt = json.load(f).get("format")
    except (OSError, ValueError, AttributeError):
        return None
    return fmt if isinstance(fmt, str) and fmt.startswith(OLDER) and fmt != FORMAT else None
