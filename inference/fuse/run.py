"""A run's adaptation of the gate, and each sent span's final label, decided once.

A run is like dev unless the LLM's agreement shows the local model right more or less often
than on dev, by `gate.SIGMAS` standard errors (`shift.py`). Like dev, it does what dev chose at
its budget. Otherwise the local label's log-odds move by the shift, and the run chooses again
among keep / every / span by its own expected contributions to F1, with the same test.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from inference.fuse.gate import SIGMAS, Gate, expected_contribution, significant
from inference.records import decide


@dataclass(frozen=True)
class Run:
    """What a run measured and does; never saved with the gate."""

    choice: str  # what the run does at its threshold (`gate.CHOICES`)
    dev_choice: str  # what dev chose there
    shift: float = 0.0  # applied to the local label's log-odds (0 where the run is like dev)
    sigmas: float = 0.0  # the run's shift from dev's, in standard errors (signed as the shift)

    def metrics(self) -> dict:
        return {"fuse_choice": self.choice, "fuse_dev_choice": self.dev_choice, "fuse_shift": self.shift,
                "fuse_shift_sigmas": self.sigmas}


def sent_answered(records: Sequence[dict], threshold: float) -> list[dict]:
    """The spans of `records` sent at `threshold` that carry an answer."""
    return [span for rec in records for span in rec["entity"]
            if span.get("llm_answer") is not None and span["uncertainty"] > threshold]


def adapt(gate: Gate, spans: Sequence[dict], threshold: float) -> Run:
    """The run whose sent, answered spans are `spans`, sent at `threshold`."""
    dev = gate.choice(threshold)
    if gate.shift is None or gate.model is None:
        return Run(dev, dev)
    shift, sigmas = gate.shift.measure(spans, threshold)
    if abs(sigmas) < SIGMAS:
        return Run(dev, dev, 0.0, sigmas)
    best, best_total = "keep", 0.0
    for choice in ("every", "span"):
        taken = [expected_contribution(gate.outcomes(s, shift), s["llm_answer"], s["pred"], gate.price) for s in spans
                 if s["llm_answer"] != s["pred"] and gate.label(s, choice, shift) == s["llm_answer"]]
        total, square = math.fsum(m for m, _ in taken), math.fsum(q for _, q in taken)
        if total > best_total and significant(total, square):
            best, best_total = choice, total
    return Run(best, dev, shift, sigmas)


def settle(records: Sequence[dict], gate: Gate, threshold: float) -> tuple[Run, bool]:
    """Set `llm_pred` of every span of `records` (all of a run's) with an answer; (the run,
    whether any label changed)."""
    run = adapt(gate, sent_answered(records, threshold), threshold)
    changed = False
    for rec in records:
        for span in rec["entity"]:
            if span.get("llm_answer") is not None:
                final = decide(span, threshold, lambda s: gate.label(s, run.choice, run.shift))
                changed |= final != span.get("llm_pred")
                span["llm_pred"] = final
    return run, changed
