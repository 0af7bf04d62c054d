"""A run's adaptation of the gate (never saved), and each sent span's final label, decided once.
Where dev links and the run's agreement shift is within `SIGMAS` standard errors of dev's, the
run does what dev chose, the shift moving the local label's odds. Elsewhere it chooses again by
its own expected contributions, the shift applied only where significant. See docs/fuse.md."""
from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

from inference.fuse.gate import SIGMAS, Gate, best_choice, expected_contribution
from inference.records import decide


@dataclass(frozen=True)
class Run:
    """What a run measured and does; never saved with the gate."""

    choice: str  # what the run does at its threshold (`gate.CHOICES`)
    dev_choice: str  # what dev chose there
    shift: float = 0.0  # applied to the local label's log-odds (0 where the LLM cannot tell)
    sigmas: float = 0.0  # the run's shift from dev's, in standard errors (signed as the shift)

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
        return Run(dev, dev)
    shift, sigmas = gate.shift.measure(spans(), threshold)
    if abs(sigmas) < SIGMAS:
        if dev != "keep":
            return Run(dev, dev, shift, sigmas)
        shift = 0.0  # a budget dev closed opens on a shift only where it is significant
    sums = {choice: (array("d"), array("d")) for choice in ("every", "span")}
    for s in spans():
        if s["llm_answer"] != s["pred"]:  # every answer is taken; the span rule's where E[c] > 0 (`Gate.label`)
            mean, square = expected_contribution(gate.outcomes(s, shift), s["llm_answer"], s["pred"], gate.price)
            for choice, taken in (("every", True), ("span", mean > 0)):
                if taken:
                    sums[choice][0].append(mean)
                    sums[choice][1].append(square)
    # fsum is exact: the same choice in any order of the spans
    return Run(best_choice({c: (math.fsum(m), math.fsum(q)) for c, (m, q) in sums.items()}), dev, shift, sigmas)


def settle_record(record: dict, gate: Gate, run: Run, threshold: float) -> bool:
    """Set `llm_pred` of every span of `record` with an answer; whether any changed."""
    changed = False
    for span in record["entity"]:
        if span.get("llm_answer") is not None:
            final = decide(span, threshold, lambda s: gate.label(s, run.choice, run.shift))
            changed |= final != span.get("llm_pred")
            span["llm_pred"] = final
    return changed


def settle(records: Sequence[dict], gate: Gate, threshold: float) -> tuple[Run, bool]:
    """`settle_record` on all of a run's `records`, held in memory; (the run, whether any label changed)."""
    run = adapt(gate, lambda: sent_answered(records, threshold), threshold)
    changed = [settle_record(rec, gate, run, threshold) for rec in records]
    return run, any(changed)
