"""How well the local model's confidence and uncertainty match its mistakes.

Everything is measured over predicted entities (candidates are not predictions): an entity
is correct when its span and label exactly match a gold entity. Undefined values (ECE with
no predictions, AUROC when all predictions are right or all wrong) are None, which JSON
writes as null, rather than NaN, which strict JSON readers reject.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Optional

import numpy as np

from inference.reports.metrics import EntityCounts

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


def _arrays(scores: ArrayLike, flags: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    values, marks = np.asarray(scores, dtype=np.float64), np.asarray(flags, dtype=bool)
    if values.ndim != 1 or values.shape != marks.shape:
        raise ValueError(f"expected two 1-d arrays of equal length, got shapes {values.shape} and {marks.shape}")
    if not np.isfinite(values).all():
        raise ValueError(f"{int((~np.isfinite(values)).sum())} scores are NaN or infinite")
    return values, marks


class ReliabilityBins:
    """Equal-width confidence bins [lo, hi) (the last one includes 1.0), accumulated a batch
    at a time (`add`): per bin the count, the summed confidence and the number correct, which
    is all ECE and the reliability diagram need, so they are exact whatever the number of entities."""

    def __init__(self, n_bins: int = 10) -> None:
        self.n_bins = n_bins
        self.count = np.zeros(n_bins, dtype=np.int64)
        self.conf_sum = np.zeros(n_bins)
        self.correct = np.zeros(n_bins, dtype=np.int64)

    def add(self, confidences: ArrayLike, correct: ArrayLike, groups: Optional[ArrayLike] = None) -> None:
        """One batch. `groups` (non-negative ints aligned with the confidences, e.g. each one's
        sentence within the batch): the same floats as one `add` per group in increasing group
        order, each group's confidences summed per bin and the sums then added in turn."""
        conf, ok = _arrays(confidences, correct)
        if ((conf < 0) | (conf > 1)).any():
            raise ValueError("confidences must lie in [0, 1]")
        idx = np.minimum((conf * self.n_bins).astype(int), self.n_bins - 1)
        self.count += np.bincount(idx, minlength=self.n_bins)
        self.correct += np.bincount(idx[ok], minlength=self.n_bins)
        if groups is None:
            self.conf_sum += np.bincount(idx, conf, self.n_bins)
            return
        group = np.asarray(groups, dtype=np.int64)
        if group.shape != idx.shape or (group < 0).any():
            raise ValueError(f"expected {len(idx)} non-negative groups, got shape {group.shape}")
        n_groups = int(group.max()) + 1 if len(group) else 0
        sums = np.bincount(group * self.n_bins + idx, conf, n_groups * self.n_bins).reshape(n_groups, self.n_bins)
        # accumulate adds row after row, left to right: the order of one `+=` per group
        self.conf_sum = np.add.accumulate(np.vstack([self.conf_sum, sums]), axis=0)[-1]

    def table(self) -> dict[str, np.ndarray]:
        """{"edges": [n_bins + 1], "count", "confidence" (mean), "accuracy"}, each [n_bins]; mean
        confidence and accuracy are NaN for empty bins."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return {"edges": np.linspace(0.0, 1.0, self.n_bins + 1), "count": self.count.copy(),
                    "confidence": self.conf_sum / self.count, "accuracy": self.correct / self.count}

    def ece(self) -> Optional[float]:
        """Expected calibration error: |accuracy - mean confidence| per bin, weighted by bin size."""
        bins = self.table()
        n, full = bins["count"].sum(), bins["count"] > 0
        if n == 0:
            return None
        gap = np.abs(bins["accuracy"][full] - bins["confidence"][full])
        return float((bins["count"][full] / n * gap).sum())


def _binned(confidences, correct, n_bins):
    bins = ReliabilityBins(n_bins)
    bins.add(confidences, correct)
    return bins


def reliability_bins(confidences: ArrayLike, correct: ArrayLike, n_bins: int = 10) -> dict[str, np.ndarray]:
    """The `ReliabilityBins.table` of `confidences` and `correct`."""
    return _binned(confidences, correct, n_bins).table()


def ece(confidences: ArrayLike, correct: ArrayLike, n_bins: int = 10) -> Optional[float]:
    """Expected calibration error: |accuracy - mean confidence| per bin, weighted by bin size."""
    return _binned(confidences, correct, n_bins).ece()


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
    unc, is_wrong = _arrays(uncertainty, wrong)
    n_wrong = int(is_wrong.sum())
    n_right = len(is_wrong) - n_wrong
    if n_wrong == 0 or n_right == 0:
        return None
    u_stat = _average_ranks(unc)[is_wrong].sum() - n_wrong * (n_wrong + 1) / 2
    return float(u_stat / (n_wrong * n_right))


def risk_coverage(uncertainty: ArrayLike, wrong: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Error rate of the kept predictions as the most uncertain ones are handed over.

    Returns (coverage, risk), coverage ascending and ending at 1.0. Equally uncertain
    predictions are kept or handed over together, so only cuts between distinct values appear.
    """
    unc, is_wrong = _arrays(uncertainty, wrong)
    order = np.argsort(unc, kind="stable")
    unc, errors = unc[order], np.cumsum(is_wrong[order])
    cut = np.r_[unc[1:] != unc[:-1], True] if len(unc) else np.zeros(0, dtype=bool)
    kept = np.flatnonzero(cut) + 1
    return kept / len(unc), errors[cut] / kept


def is_entity(rec: dict) -> bool:
    """A local prediction, as opposed to a candidate (or gold-informed span) for the LLM."""
    return rec["pred"] != "O" and not rec.get("candidate", False)


class _Growing:
    """A 1-d numpy array appended to in place (capacity doubled when full)."""

    def __init__(self, dtype: Any) -> None:
        self.data, self.n = np.empty(1024, dtype=dtype), 0

    def extend(self, values: list) -> None:
        if self.n + len(values) > len(self.data):
            self.data = np.resize(self.data, max(2 * len(self.data), self.n + len(values)))
        self.data[self.n:self.n + len(values)] = values
        self.n += len(values)

    def array(self) -> np.ndarray:
        return self.data[:self.n]


def _sentence_outcomes(entities: Iterable[dict], gold: list) -> list[tuple[dict, bool]]:
    """Each predicted entity of one sentence (`is_entity`), and whether its span and label are gold."""
    gold_set = {(s, e, label) for s, e, label in gold}
    return [(r, (*r["span"], r["pred"]) in gold_set) for r in entities]


class LocalScores:
    """The local model's metrics accumulated one sentence at a time (`add`), computed at the end
    (`metrics`): the counts, the entity counts per label (`EntityCounts`), exact reliability bins
    of the confidence (and of the calibrated confidence) for ECE, and per predicted entity its
    uncertainty (float64) and whether it is correct (bool) for AUROC and the risk-coverage
    curve: 9 bytes per predicted entity (100 million entities: 0.9 GB, up to twice that while
    an array grows), nothing per sentence.

    The counts are kept as each sentence comes; the predicted entities wait (their dicts, at
    most `FLUSH` sentences' worth) and go into the bins and arrays a batch at a time, in a few
    numpy calls, with the floats that one call per sentence gives (`ReliabilityBins.add`'s
    groups). The dicts must not change once added."""

    FLUSH = 1024  # sentences whose entities wait for the numpy calls

    def __init__(self, n_bins: int = 10) -> None:
        self.counts = {"n_sentences": 0, "n_entities": 0, "n_candidates": 0, "n_gold_informed": 0}
        self.labelled = True  # every sentence so far came with gold
        self.entities = EntityCounts()
        self.bins, self.calibrated_bins = ReliabilityBins(n_bins), ReliabilityBins(n_bins)
        self.all_calibrated = True  # every entity so far has a calibrated confidence
        self.uncertainty, self.correct = _Growing(np.float64), _Growing(bool)
        # waiting for `flush`: the predicted entities, whether each is correct, and its
        # sentence counted from the first waiting one
        self._waiting: list[dict] = []
        self._waiting_correct: list[bool] = []
        self._waiting_sentence: list[int] = []
        self._first_waiting = 0  # n_sentences when the waiting ones began

    @classmethod
    def of(cls, predictions: list[list[dict]], golds: Optional[list[list[tuple[int, int, str]]]] = None,
           n_bins: int = 10) -> LocalScores:
        """The scores of whole lists (`golds=None`: unlabelled)."""
        if golds is not None and len(golds) != len(predictions):
            raise ValueError(f"{len(predictions)} predicted sentences but {len(golds)} gold sentences")
        scores = cls(n_bins)
        for i, sent in enumerate(predictions):
            scores.add(sent, None if golds is None else golds[i])
        return scores

    def add_record(self, record: dict) -> None:
        """One record as local_inference.py writes it ("entity", "gold" when labelled)."""
        self.add(record["entity"], record.get("gold"))

    def add(self, sent: list[dict], gold: Optional[list] = None) -> None:
        """One sentence: the dicts of `decode_sentence`, and its gold [(start, end, label)] (None: unlabelled)."""
        c = self.counts
        c["n_sentences"] += 1
        for r in sent:
            c["n_candidates"] += bool(r.get("candidate")) and not r.get("gold_informed")
            c["n_gold_informed"] += bool(r.get("gold_informed"))
        predicted = [r for r in sent if is_entity(r)]
        c["n_entities"] += len(predicted)
        self.labelled = self.labelled and gold is not None
        if gold is None or not self.labelled:
            return
        outcomes = _sentence_outcomes(predicted, gold)
        self.entities.add([(*r["span"], r["pred"]) for r in predicted], gold)
        if predicted:
            self._waiting += predicted
            self._waiting_correct += [ok for _, ok in outcomes]
            self._waiting_sentence += [c["n_sentences"] - 1 - self._first_waiting] * len(predicted)
        if c["n_sentences"] - self._first_waiting >= self.FLUSH:
            self.flush()

    def flush(self) -> None:
        """The waiting entities into the bins and the arrays."""
        predicted, correct, sentence = self._waiting, self._waiting_correct, self._waiting_sentence
        self._waiting, self._waiting_correct, self._waiting_sentence = [], [], []
        self._first_waiting = self.counts["n_sentences"]
        if not predicted:
            return
        ok = np.array(correct, dtype=bool)
        self.bins.add([r["confidence"] for r in predicted], ok, sentence)
        self.uncertainty.extend([r["uncertainty"] for r in predicted])
        self.correct.extend(correct)
        self.all_calibrated = self.all_calibrated and all("calibrated_confidence" in r for r in predicted)
        if self.all_calibrated:
            self.calibrated_bins.add([r["calibrated_confidence"] for r in predicted], ok, sentence)

    @property
    def scored(self) -> bool:
        """Whether there is gold to score against: labelled sentences, at least one."""
        return self.labelled and self.counts["n_sentences"] > 0

    def metrics(self) -> dict[str, Any]:
        """The counts; with gold, `EntityCounts.scores` (precision, recall, f1, tp, n_pred,
        n_gold, per_label) and `ece` / `auroc` of the predicted entities."""
        self.flush()
        metrics: dict[str, Any] = dict(self.counts)
        if self.scored:
            metrics.update(self.entities.scores())
            metrics.update(ece=self.bins.ece(), auroc=auroc(self.uncertainty.array(), ~self.correct.array()))
        return metrics

    def calibrated_ece(self) -> Optional[float]:
        """ECE of the entities' "calibrated_confidence" (dev temperature), None where one has none."""
        self.flush()
        return self.calibrated_bins.ece() if self.scored and self.all_calibrated else None

    def plot(self, plot_dir: str) -> None:
        """The reliability diagram and the risk-coverage curve (PNG) into `plot_dir`."""
        from inference.reports.plots import plot_reliability_bins, plot_risk_coverage

        self.flush()
        plot_reliability_bins(self.bins, f"{plot_dir}/reliability.png")
        plot_risk_coverage(self.uncertainty.array(), ~self.correct.array(), f"{plot_dir}/risk_coverage.png")


def calibrated_ece(predictions: list[list[dict]], golds: list[list[tuple[int, int, str]]],
                   n_bins: int = 10) -> Optional[float]:
    """ECE of the entities' "calibrated_confidence" (dev temperature), None where they have none."""
    return LocalScores.of(predictions, golds, n_bins).calibrated_ece()


def entity_outcomes(predictions: list[list[dict]],
                    golds: list[list[tuple[int, int, str]]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(confidence, uncertainty, correct) arrays over all predicted entities, in order.

    `predictions`: per sentence, the dicts of `decode_sentence`; `golds`: per sentence
    [(start, end, label)]. These are the inputs of `ece`, `auroc` and the plots.
    """
    if len(golds) != len(predictions):
        raise ValueError(f"{len(predictions)} predicted sentences but {len(golds)} gold sentences")
    outcomes = [o for sent, gold in zip(predictions, golds) for o in _sentence_outcomes(filter(is_entity, sent), gold)]
    return (np.asarray([r["confidence"] for r, _ in outcomes], dtype=np.float64),
            np.asarray([r["uncertainty"] for r, _ in outcomes], dtype=np.float64),
            np.asarray([ok for _, ok in outcomes], dtype=bool))


def local_metrics(predictions: list[list[dict]], golds: Optional[list[list[tuple[int, int, str]]]] = None,
                  n_bins: int = 10) -> dict[str, Any]:
    """The metrics file's content for one run (`LocalScores.metrics` of whole lists).

    `predictions` and `golds` as in `entity_outcomes`; `golds=None` (unlabelled input)
    returns only the counts.
    """
    return LocalScores.of(predictions, golds, n_bins).metrics()
