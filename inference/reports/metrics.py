"""Entity-level scores: exact span and type, as seqeval computes them on BIO tags."""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Sequence


def _prf(tp, n_pred, n_gold):
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f, "tp": tp, "n_pred": n_pred, "n_gold": n_gold}


class EntityCounts:
    """Entity counts accumulated one sentence at a time (`add`), scored at the end (`scores`):
    memory grows with the labels, not with the sentences."""

    def __init__(self) -> None:
        self.tp: Counter = Counter()
        self.n_pred: Counter = Counter()
        self.n_gold: Counter = Counter()

    def add(self, pred: Iterable[tuple[int, int, str]], gold: Iterable[tuple[int, int, str]]) -> None:
        """One sentence's predicted and gold `(start, end, label)` spans (label "O" ignored)."""
        gold_set = {tuple(x) for x in gold if x[2] != "O"}
        for x in {tuple(x) for x in pred if x[2] != "O"}:
            self.n_pred[x[2]] += 1
            self.tp[x[2]] += x in gold_set
        for x in gold_set:
            self.n_gold[x[2]] += 1

    def scores(self) -> dict[str, Any]:
        """Micro precision / recall / F1 and per-label scores."""
        scores = _prf(sum(self.tp.values()), sum(self.n_pred.values()), sum(self.n_gold.values()))
        scores["per_label"] = {lab: _prf(self.tp[lab], self.n_pred[lab], self.n_gold[lab])
                               for lab in sorted(self.n_pred | self.n_gold)}
        return scores


def entity_scores(preds: Sequence[Iterable[tuple[int, int, str]]],
                  golds: Sequence[Iterable[tuple[int, int, str]]]) -> dict[str, Any]:
    """Micro precision / recall / F1 and per-label scores.

    `preds`, `golds`: one iterable of `(start, end, label)` per sentence (label "O" ignored).
    """
    if len(preds) != len(golds):
        raise ValueError(f"{len(preds)} predicted sentences but {len(golds)} gold sentences")
    counts = EntityCounts()
    for pred, gold in zip(preds, golds):
        counts.add(pred, gold)
    return counts.scores()
