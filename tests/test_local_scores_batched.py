"""`LocalScores` works its entities a batch of sentences at a time: its metrics must be those of
one sentence at a time, floats and all (the metrics file is compared byte for byte), and agree
with seqeval and scikit-learn."""
import warnings

import numpy as np
import pytest
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from sklearn.metrics import roc_auc_score

from inference.reports.calibration import LocalScores, ReliabilityBins, ece
from tests.helpers import to_bio

LABELS = ["PER", "LOC", "ORG", "MISC"]


def random_sentence(rng, calibrated=True):
    """(words, decoded dicts, gold spans): entities that often hit the gold, candidates and
    gold-informed spans, each dict as `decode_batch` (and the rescorer) writes it."""
    n = int(rng.integers(1, 14))
    gold, taken, w = [], set(), 0
    while w < n:
        e = min(n - 1, w + int(rng.integers(0, 3)))
        if rng.random() < 0.4:
            gold.append([w, e, LABELS[int(rng.integers(4))]])
        w = e + 1
    records = []
    for s, e, label in gold:
        if rng.random() < 0.7:  # found, with the right label or another
            pred = label if rng.random() < 0.8 else LABELS[int(rng.integers(4))]
            records.append((s, e, pred, False, False))
            taken.update(range(s, e + 1))
    for s in range(n):
        if s not in taken and rng.random() < 0.15:
            kind = rng.random()
            pred = LABELS[int(rng.integers(4))] if kind < 0.5 else "O"
            records.append((s, s, pred, kind >= 0.5, 0.8 <= kind))
    out = []
    for s, e, pred, candidate, informed in sorted(records):
        conf = float(rng.choice([rng.random(), 0.5, 1.0, 0.95]))  # ties, and the last bin's edge
        rec = {"span": [s, e], "pred": pred, "confidence": conf, "uncertainty": float(round(1 - conf, 2)),
               "candidate": candidate}
        if informed:
            rec["gold_informed"] = True
        if calibrated:
            rec["calibrated_confidence"] = float(rng.random())
        out.append(rec)
    return n, out, gold


@pytest.fixture
def corpus():
    rng = np.random.default_rng(31)
    return [random_sentence(rng) for _ in range(400)]


def one_at_a_time(sentences, gold_of):
    """The reference: each sentence's predicted entities scored on their own, in order, as
    `LocalScores` did before it batched (one `ReliabilityBins.add` per sentence)."""
    bins, calibrated = ReliabilityBins(), ReliabilityBins()
    conf, unc, wrong = [], [], []
    for sent, gold in zip(sentences, gold_of):
        gold_set = {tuple(g) for g in gold}
        ents = [r for r in sent if r["pred"] != "O" and not r["candidate"]]
        ok = [(*r["span"], r["pred"]) in gold_set for r in ents]
        bins.add([r["confidence"] for r in ents], ok)
        calibrated.add([r["calibrated_confidence"] for r in ents], ok)
        conf += [r["confidence"] for r in ents]
        unc += [r["uncertainty"] for r in ents]
        wrong += [not x for x in ok]
    return bins, calibrated, conf, unc, wrong


@pytest.mark.parametrize("flush", [1, 7, 64, 1024])
def test_batched_metrics_equal_one_sentence_at_a_time_and_the_libraries(corpus, monkeypatch, flush):
    monkeypatch.setattr(LocalScores, "FLUSH", flush)
    scores = LocalScores()
    for _, sent, gold in corpus:
        scores.add_record({"entity": sent, "gold": gold})
    m = scores.metrics()
    sentences, golds = [s for _, s, _ in corpus], [g for _, _, g in corpus]
    bins, calibrated, conf, unc, wrong = one_at_a_time(sentences, golds)
    assert m["ece"] == bins.ece() and scores.calibrated_ece() == calibrated.ece()  # the same floats
    assert m["ece"] == pytest.approx(ece(conf, [not x for x in wrong]))
    assert m["auroc"] == pytest.approx(roc_auc_score(wrong, unc))
    everything = [r for s in sentences for r in s]
    assert m["n_sentences"] == len(corpus) and m["n_entities"] == len(conf)
    assert m["n_candidates"] == sum(r["candidate"] and not r.get("gold_informed", False) for r in everything) > 0
    assert m["n_gold_informed"] == sum("gold_informed" in r for r in everything) > 0
    y_true = [to_bio(g, n) for n, _, g in corpus]
    y_pred = [to_bio([(*r["span"], r["pred"]) for r in s if r["pred"] != "O" and not r["candidate"]], n)
              for n, s, _ in corpus]
    assert m["f1"] == pytest.approx(f1_score(y_true, y_pred))
    assert m["precision"] == pytest.approx(precision_score(y_true, y_pred))
    assert m["recall"] == pytest.approx(recall_score(y_true, y_pred))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = classification_report(y_true, y_pred, output_dict=True)
    for label in LABELS:
        assert m["per_label"][label]["f1"] == pytest.approx(report[label]["f1-score"])
        assert m["per_label"][label]["n_gold"] == report[label]["support"]


def test_the_same_metrics_whatever_the_batch(corpus, monkeypatch):
    results = []
    for flush in (1, 3, 1024):
        monkeypatch.setattr(LocalScores, "FLUSH", flush)
        scores = LocalScores.of([s for _, s, _ in corpus], [g for _, _, g in corpus])
        results.append((scores.metrics(), scores.calibrated_ece(), scores.uncertainty.array().tolist(),
                        scores.correct.array().tolist(), scores.bins.conf_sum.tolist()))
    assert results[0] == results[1] == results[2]


def test_one_entity_without_a_calibrated_confidence_and_unlabelled_input(monkeypatch):
    monkeypatch.setattr(LocalScores, "FLUSH", 2)
    rng = np.random.default_rng(5)
    corpus = [random_sentence(rng) for _ in range(9)] + [random_sentence(rng, calibrated=False) for _ in range(3)]
    corpus = [c for c in corpus if any(r["pred"] != "O" and not r["candidate"] for r in c[1])]
    scores = LocalScores.of([s for _, s, _ in corpus], [g for _, _, g in corpus])
    assert scores.metrics()["ece"] is not None and scores.calibrated_ece() is None
    unlabelled = LocalScores.of([s for _, s, _ in corpus])
    assert set(unlabelled.metrics()) == {"n_sentences", "n_entities", "n_candidates", "n_gold_informed"}
    assert not unlabelled.scored and unlabelled.calibrated_ece() is None


def test_grouped_bins_add_as_one_add_per_group():
    rng = np.random.default_rng(0)
    conf = rng.random(500)
    ok = rng.random(500) < 0.6
    group = np.sort(rng.integers(0, 60, 500))  # some groups empty
    one_by_one, grouped = ReliabilityBins(), ReliabilityBins()
    one_by_one.add([0.3], [True])
    grouped.add([0.3], [True])
    for g in range(60):
        one_by_one.add(conf[group == g], ok[group == g])
    grouped.add(conf, ok, group)
    assert grouped.conf_sum.tolist() == one_by_one.conf_sum.tolist()  # bit for bit
    assert grouped.count.tolist() == one_by_one.count.tolist()
    assert grouped.correct.tolist() == one_by_one.correct.tolist()
    grouped.add([], [], [])
    assert grouped.conf_sum.tolist() == one_by_one.conf_sum.tolist()
    with pytest.raises(ValueError, match="non-negative groups"):
        grouped.add([0.5], [True], [-1])
