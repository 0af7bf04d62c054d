import json
import os
import warnings

import numpy as np
import pytest
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

from dataloaders.readers import load_labels, read_dataset
from inference.reports.calibration import auroc, ece, entity_outcomes, local_metrics, reliability_bins, risk_coverage
from inference.local.decode import decode_sentence
from inference.reports.table import format_table
from tests.helpers import to_bio


def test_ece_two_bins_by_hand():
    # bin [0, .5): conf .2, .4 -> mean .3, accuracy .5; bin [.5, 1]: conf .6, .9 -> mean .75, accuracy 1
    assert ece([0.2, 0.4, 0.6, 0.9], [0, 1, 1, 1], n_bins=2) == pytest.approx(0.5 * 0.2 + 0.5 * 0.25)


def test_ece_zero_when_calibrated_and_none_when_empty():
    assert ece([0.75] * 4, [1, 1, 1, 0]) == pytest.approx(0.0)
    assert ece([1.0, 1.0], [1, 1]) == pytest.approx(0.0)
    assert ece([], []) is None


def test_reliability_bins_edges():
    bins = reliability_bins([0.0, 0.3, 0.3, 0.7, 1.0], [1, 0, 1, 1, 0], n_bins=10)
    assert bins["count"].tolist() == [1, 0, 0, 2, 0, 0, 0, 1, 0, 1]  # 1.0 falls in the last bin
    assert bins["accuracy"][3] == 0.5 and bins["confidence"][3] == pytest.approx(0.3)
    assert np.isnan(bins["accuracy"][1]) and bins["edges"].tolist() == pytest.approx(np.arange(11) / 10)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        reliability_bins([1.5], [1])
    with pytest.raises(ValueError, match="equal length"):
        reliability_bins([0.5, 0.6], [1])


def test_auroc_hand_made():
    assert auroc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert auroc([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == 0.0
    assert auroc([0.5] * 4, [0, 1, 0, 1]) == 0.5
    # wrong (.35, .8) vs right (.1, .4): .35 > .1, .35 < .4, .8 > both -> 3 of 4 pairs
    assert auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    assert auroc([0.1, 0.2], [0, 0]) is None and auroc([0.1], [1]) is None
    with pytest.raises(ValueError, match="NaN"):
        auroc([0.1, float("nan")], [0, 1])


def test_auroc_matches_pairwise_count():
    rng = np.random.default_rng(1)
    unc = rng.integers(0, 6, size=80) / 5  # many ties
    wrong = rng.random(80) < 0.3
    pos, neg = unc[wrong], unc[~wrong]
    pairs = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    assert auroc(unc, wrong) == pytest.approx(pairs.mean())


def test_risk_coverage():
    coverage, risk = risk_coverage([0.9, 0.1, 0.5, 0.3], [1, 0, 1, 0])
    assert coverage.tolist() == [0.25, 0.5, 0.75, 1.0]
    assert risk.tolist() == pytest.approx([0.0, 0.0, 1 / 3, 0.5])
    coverage, risk = risk_coverage([0.2, 0.2, 0.1], [1, 0, 0])  # the tied pair is cut together
    assert coverage.tolist() == pytest.approx([1 / 3, 1.0]) and risk.tolist() == pytest.approx([0.0, 1 / 3])
    coverage, risk = risk_coverage([], [])
    assert coverage.size == risk.size == 0


def ent(s, e, pred, conf=0.9, candidate=False, **extra):
    return {"span": [s, e], "pred": pred, "confidence": conf, "uncertainty": 1 - conf,
            "candidate": candidate, **extra}


def test_local_metrics_by_hand():
    preds = [[ent(0, 0, "ORG", 0.95), ent(2, 2, "PER", 0.6), ent(4, 5, "O", 0.55, candidate=True)],
             [ent(1, 2, "LOC", 0.8),
              ent(4, 4, "PER", 0.5, candidate=True, gold_informed=True)],
             []]
    golds = [[(0, 0, "ORG"), (2, 2, "MISC")],
             [(1, 2, "LOC"), (4, 4, "PER")],  # (4, 4) only reached through the gold-informed record
             [[3, 3, "PER"]]]  # never predicted; lists as read back from JSON
    m = local_metrics(preds, golds, n_bins=10)
    assert (m["tp"], m["n_pred"], m["n_gold"]) == (2, 3, 5)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 5)
    assert m["f1"] == pytest.approx(2 * (2 / 3) * (2 / 5) / (2 / 3 + 2 / 5))
    assert m["per_label"]["PER"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "tp": 0, "n_pred": 1, "n_gold": 2}
    assert m["per_label"]["MISC"]["recall"] == 0.0 and m["per_label"]["ORG"]["f1"] == 1.0
    assert (m["n_sentences"], m["n_entities"], m["n_candidates"], m["n_gold_informed"]) == (3, 3, 1, 1)
    # one entity per bin: |1 - .95|, |0 - .6|, |1 - .8|, each weighted 1/3
    assert m["ece"] == pytest.approx((0.05 + 0.6 + 0.2) / 3)
    assert m["auroc"] == 1.0  # the one wrong entity is the most uncertain
    json.dumps(m, allow_nan=False)


def test_entity_outcomes_and_unlabelled():
    preds = [[ent(0, 1, "PER", 0.7), ent(3, 3, "O", 0.6, candidate=True)], [ent(2, 2, "LOC", 0.9)]]
    conf, unc, correct = entity_outcomes(preds, [[(0, 1, "PER")], [(2, 2, "ORG")]])
    assert conf.tolist() == [0.7, 0.9] and unc.tolist() == pytest.approx([0.3, 0.1])
    assert correct.tolist() == [True, False]
    assert local_metrics(preds) == {"n_sentences": 2, "n_entities": 2, "n_candidates": 1, "n_gold_informed": 0}
    with pytest.raises(ValueError, match="2 predicted sentences but 1 gold"):
        local_metrics(preds, [[]])


def random_spans(rng, n, labels):
    spans, w = [], 0
    while w < n:
        e = min(n - 1, w + int(rng.integers(0, 3)))
        if rng.random() < 0.35:
            spans.append((w, e, labels[int(rng.integers(len(labels)))]))
        w = e + 1
    return spans


def test_matches_seqeval_on_random_predictions():
    rng = np.random.default_rng(2)
    labels = ["PER", "LOC", "ORG", "MISC"]
    lengths = rng.integers(1, 15, size=300)
    golds = [random_spans(rng, n, labels) for n in lengths]
    preds = []
    for n, gold in zip(lengths, golds):  # half the gold kept, plus random noise
        keep = [g for g in gold if rng.random() < 0.5]
        taken = {i for s, e, _ in keep for i in range(s, e + 1)}
        noise = [x for x in random_spans(rng, n, labels) if taken.isdisjoint(range(x[0], x[1] + 1))]
        preds.append(sorted(keep + noise))
    m = local_metrics([[ent(s, e, lab) for s, e, lab in p] for p in preds], golds)
    y_true = [to_bio(g, n) for g, n in zip(golds, lengths)]
    y_pred = [to_bio(p, n) for p, n in zip(preds, lengths)]
    assert 0.2 < m["f1"] < 0.9  # a mix of hits and misses
    assert m["precision"] == pytest.approx(precision_score(y_true, y_pred))
    assert m["recall"] == pytest.approx(recall_score(y_true, y_pred))
    assert m["f1"] == pytest.approx(f1_score(y_true, y_pred))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # seqeval warns on labels with no predictions
        report = classification_report(y_true, y_pred, output_dict=True)
    for label in labels:
        assert m["per_label"][label]["f1"] == pytest.approx(report[label]["f1-score"])
        assert m["per_label"][label]["n_gold"] == report[label]["support"]


def test_format_table():
    preds = [[ent(0, 0, "ORG", 0.95), ent(2, 2, "PER", 0.6), ent(4, 4, "O", 0.5, candidate=True)]]
    m = local_metrics(preds, [[(0, 0, "ORG"), (2, 2, "MISC")]])
    lines = format_table(m).splitlines()
    assert lines[0].split() == ["label", "P", "R", "F1", "pred", "gold"]
    assert lines[1].split() == ["MISC", "0.00", "0.00", "0.00", "0", "1"]
    assert lines[4].split() == ["overall", "50.00", "50.00", "50.00", "2", "2"]
    assert "ECE 0.3250" in lines[5]  # (|1 - .95| + |0 - .6|) / 2
    assert "AUROC 1.0000" in lines[5] and "1 candidates" in lines[5]
    unlabelled = format_table(local_metrics(preds))
    assert unlabelled == "1 sentences, 2 entities, 1 candidates"
    assert "AUROC n/a" in format_table(local_metrics(preds[:1], [[(0, 0, "ORG"), (2, 2, "PER")]]))


CONLL_TEST = "../shared/data/conll03/spanner.test"


def test_real_conll_decoded_noisy_scores_match_seqeval():
    """Decode noisy span scores on the real CoNLL-2003 test sentences; F1 must equal seqeval's."""
    if not os.path.isfile(CONLL_TEST):
        pytest.skip(f"{CONLL_TEST} not found (real data lives in ../shared/data)")
    sentences = read_dataset(CONLL_TEST)
    labels = load_labels(None, sentences)
    rng = np.random.default_rng(3)
    preds, golds, y_true, y_pred = [], [], [], []
    for sent in sentences:
        n = len(sent.words)
        spans = [(s, e) for s in range(n) for e in range(s, min(n, s + 4))]
        logits = rng.normal(size=(len(spans), len(labels))) * 1.5
        index = {sp: i for i, sp in enumerate(spans)}
        logits[:, 0] += 4.0
        for s, e, label in sent.entities:
            if (s, e) in index:
                logits[index[(s, e)], labels.index(label)] += 5.0
        probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        out = decode_sentence(spans, probs, 1 - probs.max(1), labels, candidate_threshold=0.5,
                              gold=sent.entities, words=sent.words)
        preds.append(out)
        golds.append(sent.entities)
        y_true.append(to_bio(sent.entities, n))
        y_pred.append(to_bio([(*r["span"], r["pred"]) for r in out if not r["candidate"]], n))
    m = local_metrics(preds, golds)
    assert 0.3 < m["f1"] < 0.95 and m["n_candidates"] > 0
    assert m["f1"] == pytest.approx(f1_score(y_true, y_pred))
    assert m["precision"] == pytest.approx(precision_score(y_true, y_pred))
    assert m["recall"] == pytest.approx(recall_score(y_true, y_pred))
