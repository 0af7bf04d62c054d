"""A run's adaptation of the gate (never saved), and each sent span's final label, decided once.
A run like dev (its agreement shift within `SIGMAS` standard errors of dev's) does what dev chose,
with dev's model. A run unlike dev, or where dev kept, chooses again by its own expected
contributions; unlike dev, the shift model at the run's shift gives the outcomes. See docs/fuse.md."""
from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Iterator, Sequence

from inference.fuse.gate import SIGMAS, Gate, best_choice, expected_contribution
from inference.records import decide


@dataclass(frozen=True)
class Run:
    """What a run measured and does; never saved with the gate."""

    gate: Gate
    choice: str  # what the run does at its threshold (`gate.CHOICES`)
    dev_choice: str  # what dev chose there
    shift: float = 0.0  # the local label's log-odds on this run less on dev (0 where the LLM cannot tell)
    sigmas: float = 0.0  # that difference in standard errors

    @property
    def unlike_dev(self) -> bool:
        return abs(self.sigmas) >= SIGMAS

    def outcomes(self, span: dict) -> list[float]:
        """The probabilities of `gate.OUTCOMES` for `span` on this run: unlike dev, the shift
        model's at the run's shift; like dev, dev's model."""
        if self.unlike_dev and self.gate.shift is not None:
            return self.gate.shift.outcomes(span, self.shift)
        return self.gate.outcomes(span)

    def label(self, span: dict) -> str:
        """The final label of a sent span with an answer."""
        return self.gate.label(span, self.choice, self.outcomes)

    def metrics(self) -> dict:
        return {"fuse_choice": self.choice, "fuse_dev_choice": self.dev_choice, "fuse_shift": self.shift,
                "fuse_shift_sigmas": self.sigmas}


def sent_answered(records: Iterable[dict], threshold: float) -> Iterator[dict]:
    """The spans of `records` sent at `threshold` that carry an answer."""
    return (span for rec in records for span in rec["entity"]
            if span.get("llm_answer") is not None and span["uncertainty"] > threshold)


def adapt(gate: Gate, spans: Callable[[], Iterable[dict]], threshold: float) -> Run:
    """The run whose sent, answered spans `spans()` yields (read once, or twice where the run
    chooses again), sent at `threshold`. Where dev kept the local labels, the run's spans may be
    harder than dev's at that threshold (another domain), and win where dev's did not."""
    dev = gate.choice(threshold)
    if gate.shift is None or gate.model is None:
        return Run(gate, dev, dev)
    run = Run(gate, dev, dev, *gate.shift.measure(spans(), threshold))
    if dev != "keep" and not run.unlike_dev:
        return run
    sums = {"every": (array("d"), array("d")), "span": (array("d"), array("d"))}
    for s in spans():
        if s["llm_answer"] != s["pred"]:  # every answer is taken; the span rule's where E[c] > 0 (`Gate.label`)
            mean, square = expected_contribution(run.outcomes(s), s["llm_answer"], s["pred"], gate.price)
            for choice in ("every", "span") if mean > 0 else ("every",):
                sums[choice][0].append(mean)
                sums[choice][1].append(square)
    # fsum is exact: the same choice in any order of the spans
    return replace(run, choice=best_choice({c: (math.fsum(m), math.fsum(q)) for c, (m, q) in sums.items()}))


def settle_record(record: dict, run: Run, threshold: float) -> bool:
    """Set `llm_pred` of every span of `record` with an answer; whether any changed."""
    changed = False
    for span in record["entity"]:
        if span.get("llm_answer") is not None:
            final = decide(span, threshold, run.label)
            changed |= final != span.get("llm_pred")
            span["llm_pred"] = final
    return changed


def settle(records: Sequence[dict], gate: Gate, threshold: float) -> tuple[Run, bool]:
    """`settle_record` on all of a run's `records`, held in memory; (the run, whether any label changed)."""
    run = adapt(gate, lambda: sent_answered(records, threshold), threshold)
    return run, any([settle_record(rec, run, threshold) for rec in records])
