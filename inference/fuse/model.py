"""What the gate reads of an answered span (never a gold label), and linear models kept as
plain numbers, so that loading them runs no code."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

LOCAL_FEATURES = ("local_uncertainty", "local_confidence", "local_says_o")
LLM_FEATURES = ("llm_p_answer", "llm_has_probs", "llm_says_o")
FEATURES = (*LOCAL_FEATURES, *LLM_FEATURES, "llm_p_local_label")
OUTCOMES = ("llm_right", "local_right", "neither")  # exclusive where the two labels differ


def local_features(span: dict) -> list[float]:
    """What the local model says of `span` (`LOCAL_FEATURES`)."""
    confidence = span.get("confidence")
    confidence = float(confidence) if isinstance(confidence, (int, float)) else 1.0 - float(span["uncertainty"])
    return [float(span["uncertainty"]), confidence, float(span["pred"] == "O")]


def llm_features(span: dict) -> list[float]:
    """What the LLM says of `span` (`LLM_FEATURES`); without probabilities, all on its answer."""
    answer, probs = span["llm_answer"], span.get("llm_probs")
    return [float(probs.get(answer, 0.0)) if probs else 1.0, float(bool(probs)), float(answer == "O")]


def gate_features(span: dict) -> list[float]:
    """`FEATURES`: both models' signals and the LLM's probability of the local label."""
    probs = span.get("llm_probs")
    p_local = float(probs.get(span["pred"], 0.0)) if probs else float(span["llm_answer"] == span["pred"])
    return [*local_features(span), *llm_features(span), p_local]


@dataclass
class Linear:
    """Standardised linear scores: one row of `coef` and one `intercept` per output."""

    mean: list[float]
    scale: list[float]
    coef: list[list[float]]
    intercept: list[float]

    def scores(self, x: Sequence[float]) -> list[float]:
        """One score per output for the features `x`."""
        std = [(v - m) / s for v, m, s in zip(x, self.mean, self.scale)]
        return [b + sum(c * v for c, v in zip(row, std)) for row, b in zip(self.coef, self.intercept)]

    @classmethod
    def from_dict(cls, data: dict, inputs: int, outputs: int) -> "Linear":
        """A ValueError unless `data` holds `outputs` rows over `inputs` finite numbers."""
        rows = [data["mean"], data["scale"], data["intercept"], *data["coef"]]
        if [len(row) for row in rows] != [inputs, inputs, outputs, *[inputs] * outputs] or 0 in data["scale"] or not all(
                type(v) in (int, float) and math.isfinite(v) for row in rows for v in row):
            raise ValueError("bad linear model")
        return cls(data["mean"], data["scale"], data["coef"], data["intercept"])
