"""A SIMULATED LLM for the linking bench: no model is called, and its figures are not LLM results.

For a span with gold label g (from the labelled split: the simulation reads gold, the fuse gate
never does), the simulated LLM answers g with probability `accuracy`, else one of the other
options (the entity labels and "O") uniformly. Its probabilities are either

    informative   the answer's probability drawn higher when it is right: sigmoid(N(+1.5, 1))
                  for a right answer, sigmoid(N(-0.5, 1)) for a wrong one, the rest of the mass
                  spread evenly over the other options;
    flat          none at all (as a server that returns no log-probabilities): the gate reads
                  the answer and the local model's signals only.

Whether a span's answer is right is drawn from a hash of (seed, sentence, span), so the same
span gets the same answer across budgets, and a higher accuracy turns wrong answers right
without reshuffling the others (a coupled draw: curves over accuracy are smooth).
"""
from __future__ import annotations

import hashlib
import math
import random

from inference.reports.dev_gain import gold_label

KINDS = ("informative", "flat")


def _uniform(*key) -> random.Random:
    return random.Random(int.from_bytes(hashlib.sha256(repr(key).encode()).digest()[:8], "big"))


def answer_span(record: dict, span: dict, accuracy: float, kind: str, labels: list[str], seed: int) -> dict:
    """A copy of `span` with the simulated llm_answer (and llm_probs when informative)."""
    rng = _uniform(seed, record.get("id"), record.get("sentence"), tuple(span["span"]))
    gold = gold_label(record, span)
    options = sorted(set(labels) | {"O"})
    right = rng.random() < accuracy
    wrong = rng.choice([o for o in options if o != gold])
    answer = gold if right else wrong
    out = {**span, "llm_answer": answer, "llm_status": "linked"}
    if kind == "informative":
        c = 1.0 / (1.0 + math.exp(-rng.gauss(1.5 if right else -0.5, 1.0)))
        rest = [o for o in options if o != answer]
        out["llm_probs"] = {answer: c, **{o: (1.0 - c) / len(rest) for o in rest}}
    elif kind != "flat":
        raise ValueError(f"unknown kind {kind!r} ({', '.join(KINDS)})")
    return out


def answer_records(records: list[dict], threshold: float, accuracy: float, kind: str, labels: list[str],
                   seed: int) -> list[dict]:
    """The records with every span above `threshold` answered by the simulated LLM."""
    return [{**rec, "entity": [answer_span(rec, sp, accuracy, kind, labels, seed) if sp["uncertainty"] > threshold
                               else sp for sp in rec["entity"]]} for rec in records]
