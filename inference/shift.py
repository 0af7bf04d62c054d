"""How much less (or more) often the local model is right on a run's sent spans than on dev,
estimated without gold from how often the LLM agrees with it.

A gate fitted on clean dev data trusts the local model as much as dev taught it to; on shifted
text (typos, unseen names, another domain) the local model is wrong more often at the same
uncertainty, and the gate then keeps too many local labels. The LLM's answers tell how much:
where both models answer a span independently, with l the chance the local label is right, a the
LLM's and c the chance two wrong labels coincide, they agree with probability

    P(agree) = l * a + (1 - l) * (1 - a) * c.

`ShiftModel` holds dev-fitted logistic models of l (from the local model's own signals) and of a
(from the LLM's), and c. On a run's sent spans it finds the shift `delta` of l's log-odds that
makes the expected agreements equal the observed ones (`solve`), relative to the shift the same
estimate finds on dev itself at that threshold (which absorbs what the independence assumption
gets wrong), shrunk toward 0 for few spans, and clipped. The gate adds it to the log-odds of its
"local label right" model. Agreement needs no gold: the estimate reads only the two labels.

More readings of the same fit: `weaker`, how many standard errors (the run's and dev's
reference's together) the run's shift lies below dev's, which says whether the run differs from
dev (and, far enough below, whether a budget dev closed may link); `outcomes`, the chances that the LLM, the
local label or neither is right where the two disagree, which decide a run that differs from
dev; and `expected_precision`, the mean P(local right) over the local entities, whose ratio to
dev's prices an added entity at the run's F1 rather than dev's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

LOCAL_FEATURES = ("uncertainty", "confidence", "pred_is_o")
LLM_FEATURES = ("llm_p_answer", "llm_has_probs", "answer_is_o")
LIMIT = 3.0  # the largest shift applied, in log-odds
PRIOR_SPANS = 50  # shrinkage: a shift from n spans is scaled by n / (n + PRIOR_SPANS)
MIN_SLOPE = 0.05  # below this mean d(agreement)/d(shift) per span the LLM says too little to tell


def local_features(span: dict) -> list[float]:
    confidence = span.get("confidence")
    confidence = float(confidence) if isinstance(confidence, (int, float)) else 1.0 - float(span["uncertainty"])
    return [float(span["uncertainty"]), confidence, float(span["pred"] == "O")]


def llm_features(span: dict) -> list[float]:
    answer, probs = span["llm_answer"], span.get("llm_probs")
    return [float(probs.get(answer, 0.0)) if probs else 1.0, float(bool(probs)), float(answer == "O")]


def sigmoid(z: float) -> float:
    """The logistic function, its argument clipped to +-60."""
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


@dataclass
class Logit:
    """A standardised logistic model kept as plain numbers."""

    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float

    def z(self, x: Sequence[float]) -> float:
        return self.intercept + sum(c * (v - m) / s for c, v, m, s in zip(self.coef, x, self.mean, self.scale))

    @classmethod
    def from_dict(cls, data: dict, n: int) -> "Logit":
        parts = [data[key] for key in ("mean", "scale", "coef")]
        if any(len(p) != n or not all(isinstance(v, (int, float)) for v in p) for p in parts) or 0 in data["scale"]:
            raise ValueError("bad logistic model")
        return cls(*[[float(v) for v in p] for p in parts], float(data["intercept"]))


@dataclass
class ShiftModel:
    local: Logit  # P(the local label is right) from `local_features`
    llm: Logit  # P(the LLM's answer is right) from `llm_features`
    coincide: float  # P(the two agree | both wrong), on dev
    reference: list[list[float]]  # [threshold, the shift `solve` finds on dev there, its standard error]
    precision: Optional[float] = None  # `expected_precision` of the dev split (None: not measured)

    def p_local(self, span: dict) -> float:
        """P(the local label is right) as dev saw it, kept inside (0, 1)."""
        return min(max(sigmoid(self.local.z(local_features(span))), 1e-6), 1.0 - 1e-6)

    def _terms(self, spans: Sequence[dict]) -> list[tuple[float, float]]:
        """Per span: the log-odds of P(local right) as dev saw it, and P(LLM right)."""
        return [(self.local.z(local_features(s)), sigmoid(self.llm.z(llm_features(s)))) for s in spans]

    def _agreement(self, z: float, a: float, delta: float) -> tuple[float, float]:
        """P(the two agree) for a span with terms (z, a) at shift `delta`, and its slope in `delta`."""
        l, c = sigmoid(z + delta), self.coincide
        return l * (a - (1 - a) * c) + (1 - a) * c, l * (1 - l) * (a - (1 - a) * c)

    def _error(self, terms: list[tuple[float, float]], delta: float) -> float:
        variance = slope = 0.0
        for z, a in terms:
            p, dp = self._agreement(z, a, delta)
            variance, slope = variance + p * (1 - p), slope + dp
        return math.sqrt(variance) / slope if slope > 0 else math.inf

    def estimate(self, spans: Sequence[dict]) -> Optional[tuple[float, float]]:
        """(the log-odds shift of P(local right) that makes the expected agreements over `spans`
        (answered spans) equal the observed ones, its standard error); None when the LLM's
        answers cannot tell."""
        if not spans:
            return None
        terms = self._terms(spans)
        observed = sum(s["llm_answer"] == s["pred"] for s in spans)

        def expected(delta: float) -> float:
            return sum(self._agreement(z, a, delta)[0] for z, a in terms)

        if sum(self._agreement(z, a, 0.0)[1] for z, a in terms) / len(terms) < MIN_SLOPE:
            return None
        lo, hi = -2 * LIMIT, 2 * LIMIT
        if observed <= expected(lo):
            found = lo
        elif observed >= expected(hi):
            found = hi
        else:
            for _ in range(50):  # expected() rises with delta where the LLM beats coincidence
                mid = (lo + hi) / 2
                lo, hi = (mid, hi) if expected(mid) < observed else (lo, mid)
            found = (lo + hi) / 2
        return found, self._error(terms, found)

    def solve(self, spans: Sequence[dict]) -> Optional[float]:
        """`estimate`'s shift alone."""
        found = self.estimate(spans)
        return None if found is None else found[0]

    def expected_precision(self, records: Sequence[dict], threshold: float = math.inf, delta: float = 0.0) -> float:
        """The share of the local model's entities expected right: the mean P(local right) over
        every span it tags as an entity, shifted by `delta` on those sent at `threshold`."""
        p = [sigmoid(self.local.z(local_features(s)) + (delta if s["uncertainty"] > threshold else 0.0))
             for rec in records for s in rec["entity"] if s["pred"] != "O"]
        return math.fsum(p) / len(p) if p else 0.0  # fsum: the same whatever the records' order

    def outcomes(self, span: dict, delta: float = 0.0) -> tuple[float, float]:
        """(P(the LLM's answer is right), P(the local label is right)) for a span where the two
        differ, by the same independence model: odds a(1 - l) : l(1 - a) : (1 - a)(1 - l)(1 - c)
        for the LLM right, the local label right and neither, l shifted by `delta`."""
        l = sigmoid(self.local.z(local_features(span)) + delta)
        a = sigmoid(self.llm.z(llm_features(span)))
        llm, local, neither = a * (1 - l), l * (1 - a), (1 - a) * (1 - l) * (1 - self.coincide)
        total = llm + local + neither
        return (llm / total, local / total) if total > 0 else (0.0, 0.0)

    def standard_error(self, spans: Sequence[dict], delta: float) -> float:
        """The standard error of `solve`'s shift over `spans` near `delta`: the binomial spread of
        the agreement count over its rate of change with the shift (inf when it does not change)."""
        return self._error(self._terms(spans), delta)

    def measure(self, spans: Sequence[dict], threshold: float) -> tuple[float, float, float]:
        """(`shift`, `weaker`, the standard error of the difference they read: the run's and dev's
        reference's together, inf when the answers cannot tell) of a run whose sent, answered
        spans are `spans`, estimated once."""
        estimate = self.estimate(spans)
        if estimate is None or not self.reference:
            return 0.0, 0.0, math.inf
        found, run_error = estimate
        _, ref, ref_error = min(self.reference, key=lambda row: abs(row[0] - threshold))
        delta = max(-LIMIT, min(LIMIT, (found - ref) * len(spans) / (len(spans) + PRIOR_SPANS)))
        error = math.hypot(run_error, ref_error)
        return delta, (ref - found) / error if 0 < error < math.inf else 0.0, error

    def shift(self, spans: Sequence[dict], threshold: float) -> float:
        """The shift to apply at `threshold`: the run's shift less dev's own there, shrunk by
        n / (n + PRIOR_SPANS) for n spans, clipped at +-LIMIT; 0.0 when the answers cannot tell."""
        return self.measure(spans, threshold)[0]

    def weaker(self, spans: Sequence[dict], threshold: float) -> float:
        """How many standard errors the run's shift lies below the one dev itself shows at
        `threshold` (positive: the local model is right less often on the run than on dev), the
        errors of both estimates counted; 0.0 when the LLM's answers cannot tell."""
        return self.measure(spans, threshold)[1]

    @classmethod
    def from_dict(cls, data: dict) -> "ShiftModel":
        """A ValueError when `data` is not one."""
        try:
            coincide = float(data["coincide"])
            reference = [[float(t), float(d), float(e)] for t, d, e in data["reference"]]
            if any(e < 0 for _, _, e in reference):
                raise ValueError
            if not 0.0 <= coincide <= 1.0:
                raise ValueError
            precision = data.get("precision")
            if precision is not None and not 0.0 < float(precision) <= 1.0:
                raise ValueError
            return cls(Logit.from_dict(data["local"], len(LOCAL_FEATURES)), Logit.from_dict(data["llm"],
                       len(LLM_FEATURES)), coincide, reference, None if precision is None else float(precision))
        except (KeyError, TypeError, ValueError):
            raise ValueError("bad shift model") from None


def sent_answered(records: Sequence[dict], threshold: float) -> list[dict]:
    """The spans of `records` sent at `threshold` that carry an answer."""
    return [span for rec in records for span in rec["entity"]
            if span.get("llm_answer") is not None and span["uncertainty"] > threshold]
