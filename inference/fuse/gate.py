"""The saved gate, as the link calibration file holds it: one model of the three outcomes of a
disagreement (`model.OUTCOMES`) and dev's choice per budget (`CHOICES`). See docs/fuse.md."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

from scipy.special import softmax

from inference.fuse.model import FEATURES, OUTCOMES, Linear, gate_features
from inference.fuse.shift import ShiftModel
from utils.versioned_json import read_versioned, write_atomic

FORMAT = "linkner-link-calibration/6"
CHOICES = ("keep", "every", "span")  # keep the local labels; take every answer; take those that raise F1
REFIT = "rerun python -m inference.llm.calibrate_link (it replaces the file)"
SIGMAS = 2.0  # standard errors a gain must clear to count, on dev and on a run (about 1 in 40 by chance)


def f1_contribution(new: str, old: str, gold: Optional[str], price: float) -> float:
    """What replacing label `old` by `new` adds to F1 where the gold label is `gold` (None:
    neither), up to a positive factor: true positives gained, less `price` per entity added.
    With F1 = 2 TP / (P + G), `price` is F1 / 2."""
    gained = (new == gold and new != "O") - (old == gold and old != "O")
    return gained - price * ((new != "O") - (old != "O"))


def expected_contribution(probs: list[float], answer: str, pred: str, price: float) -> tuple[float, float]:
    """(E[c], E[c^2]) of taking `answer` over `pred`, c the `f1_contribution`, for the
    probabilities of `OUTCOMES`."""
    values = [f1_contribution(answer, pred, gold, price) for gold in (answer, pred, None)]
    return sum(p * v for p, v in zip(probs, values)), sum(p * v * v for p, v in zip(probs, values))


def best_choice(sums: dict[str, tuple[float, float]]) -> str:
    """The choice whose contributions (their sum, the sum of their squares) are the largest
    significant gain: a sum at least `SIGMAS` standard errors, sum c >= SIGMAS sqrt(sum c^2).
    Where each c is +1 or -1, this is the sign test. "keep" where none is."""
    gains = {c: total for c, (total, square) in sums.items() if total > 0 and total >= SIGMAS * math.sqrt(square)}
    return max(gains, key=lambda c: gains[c]) if gains else "keep"


@dataclass
class Gate:
    model: Optional[Linear]  # scores of `OUTCOMES` from `FEATURES`; None: too few disagreements to fit
    budgets: list[list]  # [dev threshold, one of CHOICES], sorted by threshold
    price: float = 0.5  # half the local F1 on dev: what an added entity costs
    shift: Optional[ShiftModel] = None
    identity: dict = field(default_factory=dict)  # the LLM and prompt it was fitted for
    report: dict = field(default_factory=dict)  # what the preflight measured, for people

    def choice(self, threshold: float) -> str:
        """Dev's choice at the budget whose dev threshold is nearest `threshold`."""
        return min(self.budgets, key=lambda pair: abs(pair[0] - threshold))[1] if self.budgets else "keep"

    def outcomes(self, span: dict) -> list[float]:
        """The probabilities of `OUTCOMES` for `span`."""
        return [0.0, 1.0, 0.0] if self.model is None else softmax(self.model.scores(gate_features(span))).tolist()

    def label(self, span: dict, choice: str, outcomes: Optional[Callable[[dict], list[float]]] = None) -> str:
        """The final label of a sent span with an answer under `choice`; the span rule reads
        `outcomes(span)` (by default, this gate's model)."""
        answer, pred = span["llm_answer"], span["pred"]
        take = choice == "every" or (choice == "span" and answer != pred and expected_contribution(
            (outcomes or self.outcomes)(span), answer, pred, self.price)[0] > 0)
        return answer if take else pred

    def save(self, path: str) -> str:
        return write_atomic(path, {"format": FORMAT, **asdict(self)}, indent=1)

    @classmethod
    def load(cls, path: str) -> "Gate":
        """The gate in `path`; a ValueError naming the file when it is older, damaged or foreign."""
        data = read_versioned(path, FORMAT, "link calibration", REFIT)
        try:
            model = None if data["model"] is None else Linear.from_dict(data["model"], len(FEATURES), len(OUTCOMES))
            budgets = [[float(t), c] for t, c in data["budgets"]]
            price, identity = data["price"], data["identity"]
            if any(c not in CHOICES for _, c in budgets) or not isinstance(identity, dict) or not 0 <= price <= 0.5:
                raise ValueError
            shift = None if data["shift"] is None else ShiftModel.from_dict(data["shift"])
            return cls(model, sorted(budgets), float(price), shift, identity, data.get("report") or {})
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}: a damaged link calibration (expected the gate's model over "
                             f"{', '.join(FEATURES)}, the budgets, the price and the LLM's identity); {REFIT}") from None
