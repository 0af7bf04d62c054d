"""Entity-level scores: exact span and type, as seqeval computes them on BIO tags."""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Sequence


def _prf(tp, n_pred, n_gold):
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f, "tp": tp, "n_pred": n_pred, "n_gold": n_gold}


def entity_scores(preds: Sequence[Iterable[tuple[int, int, str]]],
                  golds: Sequence[Iterable[tuple[int, int, str]]]) -> dict[str, Any]:
    """Micro precision / recall / F1 and per-label scores.

    `preds`, `golds`: one iterable of `(start, end, label)` per sentence (label "O" ignored).
    """
    if len(preds) != len(golds):
        raise ValueError(f"{len(preds)} predicted sentences but {len(golds)} gold sentences")
    tp, n_pred, n_gold = Counter(), Counter(), Counter()
    for pred, gold in zip(preds, golds):
        pred = {tuple(x) for x in pred if x[2] != "O"}
        gold = {tuple(x) for x in gold if x[2] != "O"}
        for x in pred:
            n_pred[x[2]] += 1
            tp[x[2]] += x in gold
        for x in gold:
            n_gold[x[2]] += 1
    scores = _prf(sum(tp.values()), sum(n_pred.values()), sum(n_gold.values()))
    scores["per_label"] = {lab: _prf(tp[lab], n_pred[lab], n_gold[lab]) for lab in sorted(n_pred | n_gold)}
    return scores
