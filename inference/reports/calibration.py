"""How well the local model's confidence and uncertainty match its mistakes.

Everything is measured over predicted entities (candidates are not predictions): an entity
is correct when its span and label exactly match a gold entity. Undefined values (ECE with
no predictions, AUROC when all predictions are right or all wrong) are None, which JSON
writes as null, rather than NaN, which strict JSON readers reject.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from inference.reports.metrics import entity_scores

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


def _arrays(scores, flags):
    scores, flags = np.asarray(scores, dtype=np.float64), np.asarray(flags, dtype=bool)
    if scores.ndim != 1 or scores.shape != flags.shape:
        raise ValueError(f"expected two 1-d arrays of equal length, got shapes {scores.shape} and {flags.shape}")
    if not np.isfinite(scores).all():
        raise ValueError(f"{int((~np.isfinite(scores)).sum())} scores are NaN or infinite")
    return scores, flags


def reliability_bins(confidences: ArrayLike, correct: ArrayLike, n_bins: int = 10) -> dict[str, np.ndarray]:
    """Equal-width confidence bins [lo, hi) (the last one includes 1.0).

    Returns {"edges": [n_bins + 1], "count", "confidence" (mean), "accuracy"}, each [n_bins];
    mean confidence and accuracy are NaN for empty bins.
    """
    conf, ok = _arrays(confidences, correct)
    if ((conf < 0) | (conf > 1)).any():
        raise ValueError("confidences must lie in [0, 1]")
    idx = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, conf, n_bins) / count
        accuracy = np.bincount(idx, ok, n_bins) / count
    return {"edges": np.linspace(0.0, 1.0, n_bins + 1), "count": count,
            "confidence": mean_conf, "accuracy": accuracy}


def ece(confidences: ArrayLike, correct: ArrayLike, n_bins: int = 10) -> Optional[float]:
    """Expected calibration error: |accuracy - mean confidence| per bin, weighted by bin size."""
    bins = reliability_bins(confidences, correct, n_bins)
    n, full = bins["count"].sum(), bins["count"] > 0
    if n == 0:
        return None
    gap = np.abs(bins["accuracy"][full] - bins["confidence"][full])
    return float((bins["count"][full] / n * gap).sum())


def _average_ranks(x):
    """1-based ranks of `x`, tied values sharing the mean of their ranks."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    first = np.r_[True, xs[1:] != xs[:-1]]
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], len(x)]
    ranks = np.empty(len(x))
    ranks[order] = ((starts + 1 + ends) / 2)[np.cumsum(first) - 1]
    return ranks


def auroc(uncertainty: ArrayLike, wrong: ArrayLike) -> Optional[float]:
    """P(a wrong prediction is more uncertain than a right one), ties counting half.

    Mann-Whitney U from ranks, O(n log n). None when only one class is present.
    """
    unc, wrong = _arrays(uncertainty, wrong)
    n_wrong = int(wrong.sum())
    n_right = len(wrong) - n_wrong
    if n_wrong == 0 or n_right == 0:
        return None
    u_stat = _average_ranks(unc)[wrong].sum() - n_wrong * (n_wrong + 1) / 2
    return float(u_stat / (n_wrong * n_right))


def risk_coverage(uncertainty: ArrayLike, wrong: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Error rate of the kept predictions as the most uncertain ones are handed over.

    Returns (coverage, risk), coverage ascending and ending at 1.0. Equally uncertain
    predictions are kept or handed over together, so only cuts between distinct values appear.
    """
    unc, wrong = _arrays(uncertainty, wrong)
    order = np.argsort(unc, kind="stable")
    unc, errors = unc[order], np.cumsum(wrong[order])
    cut = np.r_[unc[1:] != unc[:-1], True] if len(unc) else np.zeros(0, dtype=bool)
    kept = np.flatnonzero(cut) + 1
    return kept / len(unc), errors[cut] / kept


def is_entity(rec: dict) -> bool:
    """A local prediction, as opposed to a candidate (or gold-informed span) for the LLM."""
    return rec["pred"] != "O" and not rec.get("candidate", False)


def _counts(predictions):
    recs = [rec for sent in predictions for rec in sent]
    return {"n_sentences": len(predictions),
            "n_entities": sum(map(is_entity, recs)),
            "n_candidates": sum(bool(r.get("candidate")) and not r.get("gold_informed") for r in recs),
            "n_gold_informed": sum(bool(r.get("gold_informed")) for r in recs)}


def calibrated_ece(predictions: list[list[dict]], golds: list[list[tuple[int, int, str]]],
                   n_bins: int = 10) -> Optional[float]:
    """ECE of the entities' "calibrated_confidence" (dev temperature), None where they have none."""
    conf, correct = [], []
    for sent, gold in zip(predictions, golds):
        gold = {(s, e, label) for s, e, label in gold}
        for r in filter(is_entity, sent):
            if "calibrated_confidence" not in r:
                return None
            conf.append(r["calibrated_confidence"])
            correct.append((*r["span"], r["pred"]) in gold)
    return ece(conf, correct, n_bins) if conf else None


def entity_outcomes(predictions: list[list[dict]],
                    golds: list[list[tuple[int, int, str]]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(confidence, uncertainty, correct) arrays over all predicted entities, in order.

    `predictions`: per sentence, the dicts of `decode_sentence`; `golds`: per sentence
    [(start, end, label)]. These are the inputs of `ece`, `auroc` and the plots.
    """
    if len(golds) != len(predictions):
        raise ValueError(f"{len(predictions)} predicted sentences but {len(golds)} gold sentences")
    conf, unc, correct = [], [], []
    for sent, gold in zip(predictions, golds):
        gold = {(s, e, label) for s, e, label in gold}
        for r in filter(is_entity, sent):
            conf.append(r["confidence"])
            unc.append(r["uncertainty"])
            correct.append((*r["span"], r["pred"]) in gold)
    return np.asarray(conf, dtype=np.float64), np.asarray(unc, dtype=np.float64), np.asarray(correct, dtype=bool)


def local_metrics(predictions: list[list[dict]], golds: Optional[list[list[tuple[int, int, str]]]] = None,
                  n_bins: int = 10) -> dict[str, Any]:
    """The metrics file's content for one run.

    `predictions` and `golds` as in `entity_outcomes`; `golds=None` (unlabelled input)
    returns only the counts. Otherwise adds `entity_scores` (precision, recall, f1, tp,
    n_pred, n_gold, per_label) and `ece` / `auroc` of the predicted entities.
    """
    metrics = _counts(predictions)
    if golds is None:
        return metrics
    conf, unc, correct = entity_outcomes(predictions, golds)
    pred_spans = [[(*r["span"], r["pred"]) for r in filter(is_entity, sent)] for sent in predictions]
    metrics.update(entity_scores(pred_spans, golds))
    metrics.update(ece=ece(conf, correct, n_bins), auroc=auroc(unc, ~correct))
    return metrics
