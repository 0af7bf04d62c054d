"""What linking is expected to score on a labelled split (the preflight's dev split) whose sent
spans, or a sample of them, carry the LLM's answers, for any rule that picks each sent span's
label. The answered spans stand for every span sent: their changes are scaled up. The
preflight's table and verdict are written from those expectations."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from inference.budget import threshold_for_budget

BUDGETS = (0.05, 0.1, 0.2, 0.5)  # the shares of listed spans the preflight scores


@dataclass
class Answered:
    """One answered span of a labelled split and its gold label ("O" for none)."""

    span: dict
    gold: str


def gold_label(record: dict, span: dict) -> str:
    s, e = span["span"]
    return next((g[2] for g in record.get("gold") or [] if g[0] == s and g[1] == e), "O")


def local_counts(records: Sequence[dict]) -> tuple[int, int, int]:
    """(true positives, predicted entities, gold entities) of the local labels."""
    tp = n_pred = n_gold = 0
    for rec in records:
        gold = {(g[0], g[1]): g[2] for g in rec.get("gold") or [] if g[2] != "O"}
        preds = {(sp["span"][0], sp["span"][1]): sp["pred"] for sp in rec["entity"] if sp["pred"] != "O"}
        n_gold, n_pred = n_gold + len(gold), n_pred + len(preds)
        tp += sum(gold.get(key) == label for key, label in preds.items())
    return tp, n_pred, n_gold


def f1(tp: float, n_pred: float, n_gold: float) -> float:
    return 2 * tp / (n_pred + n_gold) if n_pred + n_gold else 0.0


def budget_thresholds(records: Sequence[dict], budgets: Sequence[float] = BUDGETS) -> dict[float, float]:
    """Per budget, its threshold on the spans `records` list (at least one)."""
    uncertainties = [sp["uncertainty"] for rec in records for sp in rec["entity"]]
    thresholds = {}
    for b in budgets:
        t = threshold_for_budget(uncertainties, b)
        if t is None:
            raise ValueError("budget_thresholds: the records list no spans")
        thresholds[b] = t
    return thresholds


class Split:
    """A labelled split's local counts and listed uncertainties, counted once."""

    def __init__(self, records: Sequence[dict]):
        self.counts = local_counts(records)
        self.uncertainties = np.sort([sp["uncertainty"] for rec in records for sp in rec["entity"]])

    def sent(self, threshold: float) -> int:
        return int(len(self.uncertainties) - np.searchsorted(self.uncertainties, threshold, side="right"))


def expected_f1(split: Split, answered: Sequence[Answered], threshold: float, choose: Callable[[Answered], str]) -> float:
    """The F1 expected at `threshold` when each sent span's label is `choose(a)`: the answered
    spans stand for every span sent, their changes scaled by (spans sent) / (answered sent)."""
    tp, n_pred, n_gold = split.counts
    inside = [a for a in answered if a.span["uncertainty"] > threshold]
    if not inside:
        return f1(tp, n_pred, n_gold)
    scale = split.sent(threshold) / len(inside)
    d_tp = sum((choose(a) == a.gold != "O") - (a.span["pred"] == a.gold != "O") for a in inside)
    d_pred = sum((choose(a) != "O") - (a.span["pred"] != "O") for a in inside)
    return f1(tp + scale * d_tp, n_pred + scale * d_pred, n_gold)


def gain_table(split: Split, answered: Sequence[Answered], thresholds: dict[float, float],
               fuse: Callable[[Answered, float], str]) -> list[dict]:
    """Per budget: its threshold and the expected local, override and fuse F1."""
    return [{"budget": b, "threshold": t, "local_f1": f1(*split.counts),
             "override_f1": expected_f1(split, answered, t, lambda a: a.span["llm_answer"]),
             "fuse_f1": expected_f1(split, answered, t, lambda a: fuse(a, t))} for b, t in thresholds.items()]


def describe(table: list[dict], choice: Callable[[float], str]) -> list[str]:
    """The per-budget table, with what fuse does at each budget on a run like dev (`choice(threshold)`)."""
    return [f"{'budget':>6}  {'threshold':>9}  {'local F1':>8}  {'override F1':>11}  {'fuse F1':>8}  fuse"] + [
        f"{r['budget']:>6.0%}  {r['threshold']:>9.4f}  {100 * r['local_f1']:>8.2f}  {100 * r['override_f1']:>11.2f}  "
        f"{100 * r['fuse_f1']:>8.2f}  {choice(r['threshold'])}" for r in table]


def verdict(table: list[dict], why: str | None = None) -> tuple[float | None, str | None, list[str]]:
    """(the recommended budget and --combine, or None, None: do not link, or cannot tell) and the
    lines saying so. `why`: why no gate was fitted, if none was."""
    local = table[0]["local_f1"]
    over, fused = max(table, key=lambda row: row["override_f1"]), max(table, key=lambda row: row["fuse_f1"])
    lines = ["this LLM is expected to LOWER F1 at every budget with --combine override (the paper's rule)"
             ] if all(row["override_f1"] < local for row in table) else []
    if fused["fuse_f1"] > local:
        return fused["budget"], "fuse", lines + [f"recommended: --combine fuse --budget {fused['budget']} (expected "
                                                 f"F1 {100 * local:.2f} -> {100 * fused['fuse_f1']:.2f} on dev)"]
    if why and over["override_f1"] > local:
        return over["budget"], "override", lines + [
            f"no gate was fitted: {why}; the paper's rule gains on dev, so recommended: --combine override --budget "
            f"{over['budget']} (expected F1 {100 * local:.2f} -> {100 * over['override_f1']:.2f})"]
    return None, None, lines + [
        f"no gate was fitted: {why}, and the paper's rule gains nothing on dev: the preflight cannot tell whether "
        "this LLM pays; send more spans (--sample) or a larger dev split" if why else
        "recommended: do not link with this LLM; --combine fuse keeps every local label unless a run's answers "
        "show the local model right significantly less often than on dev"]
