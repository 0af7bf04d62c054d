"""How much more or less often the local model is right on a run's sent spans than on dev,
from how often the LLM agrees with it (no gold): with l the chance that the local label is
right, a the LLM's and c that two wrong labels coincide, P(agree) = l a + (1 - l)(1 - a) c."""
from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from typing import Iterable, Optional

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit

from inference.fuse.model import LLM_FEATURES, LOCAL_FEATURES, Linear, llm_features, local_features

LIMIT = 3.0  # the largest shift, in log-odds: a factor of 20 in the odds that the local label is right


@dataclass
class ShiftModel:
    local: Linear  # P(the local label is right), from `local_features`
    llm: Linear  # P(the LLM's answer is right), from `llm_features`
    coincide: float  # P(the two agree | both are wrong), on dev
    reference: list[list[float]]  # [threshold, the shift found on dev there, its standard error]

    def _terms(self, spans: Iterable[dict]) -> tuple[np.ndarray, np.ndarray, int]:
        """Per span, sorted (so that any order of the spans gives the same sums): the log-odds of
        P(local right) as dev saw it and P(LLM right); and how many agree. 16 bytes a span."""
        z, a, agree = array("d"), array("d"), 0
        for s in spans:
            z.append(self.local.scores(local_features(s))[0])
            a.append(expit(self.llm.scores(llm_features(s))[0]))
            agree += s["llm_answer"] == s["pred"]
        order = np.lexsort((np.asarray(a), np.asarray(z)))
        return np.asarray(z)[order], np.asarray(a)[order], agree

    def _agreement(self, z: np.ndarray, a: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
        """P(agree) per span at shift `delta`, and its slope in `delta`."""
        p, c = expit(z + delta), self.coincide
        return p * (a - (1 - a) * c) + (1 - a) * c, p * (1 - p) * (a - (1 - a) * c)

    def outcomes(self, span: dict, delta: float) -> list[float]:
        """P(LLM right, local right, neither | the two differ) under this model at shift `delta`."""
        local = float(expit(self.local.scores(local_features(span))[0] + delta))
        a = float(expit(self.llm.scores(llm_features(span))[0]))
        w = [a * (1 - local), local * (1 - a), (1 - a) * (1 - local) * (1 - self.coincide)]
        return [v / sum(w) for v in w]

    def estimate(self, spans: Iterable[dict]) -> Optional[tuple[float, float]]:
        """(the shift that explains the agreements seen over answered `spans`, its standard
        error); None where the LLM is no likelier right than a coincidence, so cannot tell."""
        z, a, observed = self._terms(spans)
        if not len(z) or self._agreement(z, a, 0.0)[1].sum() <= 0:
            return None
        def excess(delta: float) -> float:  # expected less observed agreements: it rises with the shift
            return float(self._agreement(z, a, delta)[0].sum()) - observed

        lo, hi = -2 * LIMIT, 2 * LIMIT
        found = lo if excess(lo) >= 0 else hi if excess(hi) <= 0 else brentq(excess, lo, hi, xtol=1e-12)
        p, slope = self._agreement(z, a, found)
        return found, float(np.sqrt((p * (1 - p)).sum()) / slope.sum()) if slope.sum() > 0 else math.inf

    def measure(self, spans: Iterable[dict], threshold: float) -> tuple[float, float]:
        """(the run's shift less dev's at the nearest threshold, clipped to +-LIMIT; that
        difference in standard errors of both estimates, 0.0 where the answers cannot tell)."""
        found = self.estimate(spans)
        if found is None or not self.reference:
            return 0.0, 0.0
        _, ref, ref_error = min(self.reference, key=lambda row: abs(row[0] - threshold))
        error, difference = math.hypot(found[1], ref_error), found[0] - ref
        return (max(-LIMIT, min(LIMIT, difference)), difference / error) if 0 < error < math.inf else (0.0, 0.0)

    @classmethod
    def from_dict(cls, data: dict) -> "ShiftModel":
        """A ValueError unless `data` is one."""
        coincide = float(data["coincide"])
        reference = [[float(t), float(d), float(e)] for t, d, e in data["reference"]]
        if not 0.0 <= coincide <= 1.0 or any(e < 0 or not math.isfinite(d + e) for _, d, e in reference):
            raise ValueError("bad shift model")
        return cls(Linear.from_dict(data["local"], len(LOCAL_FEATURES), 1),
                   Linear.from_dict(data["llm"], len(LLM_FEATURES), 1), coincide, reference)
