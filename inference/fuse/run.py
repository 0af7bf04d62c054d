"""A run's adaptation of the gate (never saved), and each sent span's final label, decided once:
a run like dev (its agreement shift under `SIGMAS` standard errors) does what dev chose, unless dev
kept; else it chooses again by the shift model's expected contributions. See docs/fuse.md."""
from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Iterator, Sequence

from inference.fuse.gate import SIGMAS, Gate, expected_contribution, significant
from inference.fuse.shift import LIMIT
from inference.records import decide

DOUBT = 1.0  # where dev kept, a run like dev reads the shift this many standard errors toward the local label


@dataclass(frozen=True)
class Run:
    """What a run measured and does; never saved with the gate."""

    gate: Gate
    choice: str  # what the run does at its threshold (`gate.CHOICES`)
    dev_choice: str  # what dev chose there
    shift: float = 0.0  # the local label's log-odds on this run less on dev
    error: float = math.inf  # its standard error (infinite where the LLM's answers cannot tell)

    @property
    def sigmas(self) -> float:
        return self.shift / self.error if 0 < self.error < math.inf else 0.0

    @property
    def unlike_dev(self) -> bool:
        return abs(self.sigmas) >= SIGMAS

    def outcomes(self, span: dict) -> list[float]:
        """The probabilities of `gate.OUTCOMES` for `span` on this run. Unlike dev: the shift model's
        at the run's shift. Like dev where dev kept: its at the shift `DOUBT` standard errors toward
        the local label. Else dev's model."""
        if self.gate.shift is None or not (self.unlike_dev or self.dev_choice == "keep"):
            return self.gate.outcomes(span)
        shift = self.shift + (0.0 if self.unlike_dev else DOUBT * self.error)
        return self.gate.shift.outcomes(span, max(-LIMIT, min(LIMIT, shift)))

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
    """The run whose sent, answered spans `spans()` yields (read once, or twice where it chooses
    again), sent at `threshold`. Where dev kept, another domain's harder spans may win."""
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
    every, span = ((math.fsum(m), math.fsum(q)) for m, q in (sums["every"], sums["span"]))
    # a run cannot score what the answers the span rule declines lose (dev did, on gold): every first
    return replace(run, choice="every" if significant(*every) else "span" if significant(*span) else "keep")


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
