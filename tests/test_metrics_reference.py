"""The scorers against references that share no code with them: seqeval on the BIO tags of
the same spans (entity scores, linked scores), scikit-learn's ROC AUC (auroc), and tables
counted by hand.

Conventions checked (seqeval's): a span labelled "O" is no entity, in the gold or the
predictions; an entity predicted twice is one prediction (BIO tags cannot say it twice); a
ratio with nothing to divide by (precision without predictions, recall without gold
entities, F1 when both are 0) is 0.
"""
import warnings

import numpy as np
import pytest
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from seqeval.metrics.sequence_labeling import get_entities
from sklearn.metrics import roc_auc_score

from inference.reports.calibration import auroc, calibrated_ece, ece, reliability_bins, risk_coverage
from inference.reports.link_metrics import link_report
from inference.reports.metrics import entity_scores

LABELS = ["PER", "LOC", "ORG", "MISC"]


def bio(spans, n):
    """BIO tags of (start, end, label) spans, end inclusive; label "O" writes no entity."""
    tags = ["O"] * n
    for s, e, label in spans:
        if label != "O":
            tags[s:e + 1] = [f"B-{label}"] + [f"I-{label}"] * (e - s)
    return tags


def seqeval_scores(preds, golds, lengths):
    """What seqeval makes of the spans: micro P/R/F, entity counts, per-label P/R/F/support."""
    y_true = [bio(g, n) for g, n in zip(golds, lengths)]
    y_pred = [bio(p, n) for p, n in zip(preds, lengths)]
    true = {(i, *ent) for i, tags in enumerate(y_true) for ent in get_entities(tags)}
    pred = {(i, *ent) for i, tags in enumerate(y_pred) for ent in get_entities(tags)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # seqeval warns where it divides by zero (and returns 0)
        scores = {"precision": precision_score(y_true, y_pred), "recall": recall_score(y_true, y_pred),
                  "f1": f1_score(y_true, y_pred), "tp": len(true & pred), "n_pred": len(pred),
                  "n_gold": len(true)}
        report = classification_report(y_true, y_pred, output_dict=True) if true | pred else {}
    per_label = {label: {"precision": row["precision"], "recall": row["recall"], "f1": row["f1-score"],
                         "n_gold": row["support"]}
                 for label, row in report.items() if "avg" not in label}
    return scores, per_label


def assert_matches_seqeval(scores, preds, golds, lengths):
    expected, per_label = seqeval_scores(preds, golds, lengths)
    assert {k: scores[k] for k in expected} == pytest.approx(expected)
    if "per_label" in scores:
        # seqeval lists a label that only the predictions have, with support 0: so do we
        assert set(scores["per_label"]) == set(per_label)
        for label, row in per_label.items():
            assert {k: scores["per_label"][label][k] for k in row} == pytest.approx(row), label


def random_spans(rng, n, p=0.4):
    """Non-overlapping spans over n words, about p of the positions starting one."""
    spans, w = [], 0
    while w < n:
        e = min(n - 1, w + int(rng.integers(0, 3)))
        if rng.random() < p:
            spans.append((w, e, LABELS[int(rng.integers(len(LABELS)))]))
        w = e + 1
    return spans


def noisy_prediction(rng, gold, n):
    """Gold entities kept, retyped, cut short or dropped, random extra entities where room is
    left, some predicted twice, and spans labelled O anywhere."""
    pred = []
    for s, e, label in sorted(set(gold)):
        if label == "O":
            continue
        r = rng.random()
        if r < 0.45:
            pred.append((s, e, label))
        elif r < 0.6:
            pred.append((s, e, LABELS[(LABELS.index(label) + 1) % len(LABELS)]))
        elif r < 0.7 and e > s:
            pred.append((s, e - 1, label))
    taken = {i for s, e, _ in pred for i in range(s, e + 1)}
    pred += [x for x in random_spans(rng, n, 0.2) if taken.isdisjoint(range(x[0], x[1] + 1))]
    pred += [x for x in pred if rng.random() < 0.15]  # duplicates
    pred += [(s, e, "O") for s, e, _ in random_spans(rng, n, 0.2)]  # O spans, overlapping anything
    return [pred[i] for i in rng.permutation(len(pred))] if pred else []


def random_corpus(seed, n_sentences=200):
    rng = np.random.default_rng(seed)
    lengths = [int(x) for x in rng.integers(1, 12, size=n_sentences)]
    golds = []
    for n in lengths:
        gold = random_spans(rng, n)
        gold += [(s, e, "O") for s, e, _ in random_spans(rng, n, 0.15)]  # gold spans labelled O
        gold += [x for x in gold if rng.random() < 0.1]  # a gold entity listed twice
        golds.append(gold)
    preds = [noisy_prediction(rng, g, n) for g, n in zip(golds, lengths)]
    return preds, golds, lengths


@pytest.mark.parametrize("seed", range(6))
def test_entity_scores_match_seqeval_on_random_predictions(seed):
    preds, golds, lengths = random_corpus(seed)
    scores = entity_scores(preds, golds)
    assert 0.2 < scores["f1"] < 0.9  # a mix of hits and misses
    assert_matches_seqeval(scores, preds, golds, lengths)


def test_entity_scores_of_json_lists_and_generators():
    preds, golds, lengths = random_corpus(7, 40)
    as_lists = entity_scores([[list(x) for x in p] for p in preds], [[list(x) for x in g] for g in golds])
    as_iters = entity_scores([iter(p) for p in preds], [iter(g) for g in golds])
    assert as_lists == as_iters == entity_scores(preds, golds)
    assert_matches_seqeval(as_lists, preds, golds, lengths)


def prf(tp, n_pred, n_gold, p, r, f):
    return {"tp": tp, "n_pred": n_pred, "n_gold": n_gold, "precision": p, "recall": r, "f1": f}


# (predictions, gold, sentence length, expected micro scores counted by hand)
EDGE_CASES = {
    "nothing at all": ([], [], 3, prf(0, 0, 0, 0.0, 0.0, 0.0)),
    "no gold entities": ([(0, 0, "PER")], [], 3, prf(0, 1, 0, 0.0, 0.0, 0.0)),
    "no predictions": ([], [(0, 1, "PER")], 3, prf(0, 0, 1, 0.0, 0.0, 0.0)),
    "only O spans": ([(0, 0, "O")], [(0, 0, "O"), (1, 2, "O")], 3, prf(0, 0, 0, 0.0, 0.0, 0.0)),
    "a gold O span is no entity": ([(0, 0, "PER"), (2, 2, "LOC")], [(0, 0, "O"), (2, 2, "LOC")], 3,
                                   prf(1, 2, 1, 0.5, 1.0, 2 / 3)),
    "a predicted O span is no entity": ([(0, 0, "O"), (2, 2, "LOC")], [(0, 0, "PER"), (2, 2, "LOC")], 3,
                                        prf(1, 1, 2, 1.0, 0.5, 2 / 3)),
    "predicted twice": ([(0, 0, "PER"), (0, 0, "PER"), (2, 2, "ORG")], [(0, 0, "PER"), (2, 2, "LOC")], 3,
                        prf(1, 2, 2, 0.5, 0.5, 0.5)),
    "a wrong prediction twice": ([(2, 2, "ORG"), (2, 2, "ORG")], [(0, 0, "PER")], 3, prf(0, 1, 1, 0.0, 0.0, 0.0)),
    "gold listed twice": ([(0, 0, "PER")], [(0, 0, "PER"), (0, 0, "PER"), (2, 2, "LOC")], 3,
                          prf(1, 1, 2, 1.0, 0.5, 2 / 3)),
    "wrong type": ([(0, 1, "ORG")], [(0, 1, "PER")], 3, prf(0, 1, 1, 0.0, 0.0, 0.0)),
    "cut short": ([(0, 0, "PER")], [(0, 1, "PER")], 3, prf(0, 1, 1, 0.0, 0.0, 0.0)),
    "all right": ([(2, 2, "LOC"), (0, 1, "PER")], [(0, 1, "PER"), (2, 2, "LOC")], 3, prf(2, 2, 2, 1.0, 1.0, 1.0)),
}


@pytest.mark.parametrize("case", EDGE_CASES)
def test_edge_cases_by_hand_and_seqeval(case):
    pred, gold, n, expected = EDGE_CASES[case]
    scores = entity_scores([pred], [gold])
    assert {k: scores[k] for k in expected} == pytest.approx(expected)
    assert_matches_seqeval(scores, [pred], [gold], [n])


def test_per_label_counts_by_hand():
    preds = [[(0, 0, "PER"), (0, 0, "PER"), (2, 3, "ORG"), (5, 5, "O")], [(1, 1, "MISC")]]
    golds = [[(0, 0, "PER"), (2, 3, "LOC"), (5, 5, "O")], [(1, 1, "MISC"), (3, 3, "MISC")]]
    per_label = entity_scores(preds, golds)["per_label"]
    assert list(per_label) == ["LOC", "MISC", "ORG", "PER"]  # sorted; no "O"
    assert per_label["PER"] == prf(1, 1, 1, 1.0, 1.0, 1.0)
    assert per_label["ORG"] == prf(0, 1, 0, 0.0, 0.0, 0.0)  # predicted only
    assert per_label["LOC"] == prf(0, 0, 1, 0.0, 0.0, 0.0)  # gold only
    assert per_label["MISC"] == pytest.approx(prf(1, 1, 2, 1.0, 0.5, 2 / 3))


def test_sentence_counts_must_agree():
    with pytest.raises(ValueError, match="2 predicted sentences but 1 gold"):
        entity_scores([[], []], [[]])


# --- link_report: local and linked scores against seqeval, counts by hand ---------------------

def random_records(seed, n=150):
    """Records of single-word and longer spans (no overlaps), an LLM answer on some (None:
    unparseable, "O": removed), gold with O spans and entities that no span lists."""
    rng = np.random.default_rng(seed)
    records, lengths = [], []
    for i in range(n):
        length = int(rng.integers(1, 10))
        gold = random_spans(rng, length)
        taken = {i for s, e, _ in gold for i in range(s, e + 1)}
        gold += [(s, e, "O") for s, e, _ in random_spans(rng, length, 0.1) if taken.isdisjoint(range(s, e + 1))]
        spans = []
        for s, e, label in random_spans(rng, length, 0.6):
            pred = label if rng.random() < 0.7 else "O"
            answer = [None, "O", *LABELS][int(rng.integers(6))]
            spans.append({"span": [s, e], "pred": pred, "uncertainty": float(rng.integers(0, 10) / 10),
                          "llm_answer": answer})
        for s, e, label in gold:  # gold entities listed by a span (some keep their gold label)
            if label != "O" and rng.random() < 0.5 and all(sp["span"][1] < s or sp["span"][0] > e for sp in spans):
                spans.append({"span": [s, e], "pred": label if rng.random() < 0.6 else "O",
                              "uncertainty": float(rng.integers(0, 10) / 10),
                              "llm_answer": label if rng.random() < 0.6 else "O"})
        records.append({"id": i, "entity": spans, "gold": [list(g) for g in gold]})
        lengths.append(length)
    return records, lengths


def linked_label(span, threshold):
    """The rule, written out: the LLM's answer when there is one and the span is strictly
    more uncertain than the threshold."""
    if span["llm_answer"] is not None and span["uncertainty"] > threshold:
        return span["llm_answer"]
    return span["pred"]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.9])
def test_link_report_scores_match_seqeval(seed, threshold):
    records, lengths = random_records(seed)
    report = link_report(records, threshold, per_label=True)
    golds = [[tuple(g) for g in rec["gold"]] for rec in records]
    local = [[(*sp["span"], sp["pred"]) for sp in rec["entity"]] for rec in records]
    linked = [[(*sp["span"], linked_label(sp, threshold)) for sp in rec["entity"]] for rec in records]
    assert_matches_seqeval(report["local"], local, golds, lengths)
    assert_matches_seqeval(report["linked"], linked, golds, lengths)
    spans = [sp for rec in records for sp in rec["entity"]]
    assert report["sent"] == sum(sp["uncertainty"] > threshold for sp in spans)
    assert report["changed"] == sum(linked_label(sp, threshold) != sp["pred"] for sp in spans)
    assert report["removed"] == sum(linked_label(sp, threshold) == "O" != sp["pred"] for sp in spans)
    assert report["added"] == sum(linked_label(sp, threshold) != "O" == sp["pred"] for sp in spans)


def sentence(spans, gold):
    return {"id": 0, "entity": [{"span": [s, e], "pred": pred, "uncertainty": u, "llm_answer": a}
                                for s, e, pred, u, a in spans], "gold": gold}


def test_link_report_counts_by_hand():
    rec = sentence([(0, 0, "LOC", 0.9, "PER"),  # fixed
                    (1, 1, "PER", 0.5, "LOC"),  # at the threshold: not sent, stays PER (right)
                    (2, 2, "PER", 0.8, "PER"),  # sent, same answer: no change
                    (3, 3, "O", 0.7, "ORG"),    # added, recovered, fixed
                    (4, 4, "MISC", 0.6, "O"),   # removed; gold is O there: fixed
                    (5, 5, "ORG", 0.95, "LOC"),  # broken
                    (6, 6, "LOC", 0.9, "ORG")],  # wrong before and after: changed, neither fixed nor broken
                   [[0, 0, "PER"], [1, 1, "PER"], [2, 2, "PER"], [3, 3, "ORG"], [4, 4, "O"], [5, 5, "ORG"],
                    [6, 6, "PER"], [7, 7, "LOC"]])  # 7;7 listed by no span
    report = link_report([rec], 0.5)
    assert {k: report[k] for k in ("sent", "changed", "fixed", "broken", "removed", "added", "recovered")} == \
        {"sent": 6, "changed": 5, "fixed": 3, "broken": 1, "removed": 1, "added": 1, "recovered": 1}
    assert report["never_listed"] == 1
    # local: LOC 0, PER 1, PER 2, MISC 4, ORG 5, LOC 6 -> PER 1, PER 2, ORG 5 right; 7 gold entities
    assert report["local"] == pytest.approx(prf(3, 6, 7, 3 / 6, 3 / 7, 2 * 0.5 * (3 / 7) / (0.5 + 3 / 7)))
    # linked: PER 0, PER 1, PER 2, ORG 3, LOC 5, ORG 6 -> 4 right of 6
    assert report["linked"] == pytest.approx(prf(4, 6, 7, 4 / 6, 4 / 7, 2 * (4 / 6) * (4 / 7) / (4 / 6 + 4 / 7)))


def test_a_gold_o_span_is_never_a_missed_entity():
    rec = sentence([(0, 0, "PER", 0.9, "O")], [[0, 0, "O"], [2, 2, "O"], [3, 3, "LOC"]])
    report = link_report([rec], 0.5)
    assert report["local"]["n_gold"] == 1 and report["never_listed"] == 1


def test_link_report_without_gold_entities_or_spans():
    empty = link_report([sentence([(0, 0, "PER", 0.9, "LOC")], [])], 0.5)
    assert empty["local"] == prf(0, 1, 0, 0.0, 0.0, 0.0) and empty["linked"] == prf(0, 1, 0, 0.0, 0.0, 0.0)
    assert (empty["changed"], empty["fixed"], empty["broken"], empty["never_listed"]) == (1, 0, 0, 0)
    nothing = link_report([sentence([], [[0, 1, "PER"]])], 0.5)
    assert nothing["linked"] == prf(0, 0, 1, 0.0, 0.0, 0.0) and nothing["never_listed"] == 1
    mixed = link_report([sentence([(0, 0, "PER", 0.9, "LOC")], []), {"id": 1, "entity": []}], 0.5)
    assert "linked" not in mixed and mixed["changed"] == 1  # one record without gold: no scores


# --- calibration: AUROC against scikit-learn, ECE / bins / risk-coverage against brute force --

@pytest.mark.parametrize("seed", range(5))
def test_auroc_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 300))
    unc = rng.integers(0, 8, size=n) / 7 if seed % 2 else rng.random(n)  # with and without ties
    wrong = rng.random(n) < rng.uniform(0.1, 0.9)
    wrong[:2] = [True, False]
    assert auroc(unc, wrong) == pytest.approx(roc_auc_score(wrong, unc))
    assert auroc(-unc, wrong) == pytest.approx(1 - roc_auc_score(wrong, unc))


@pytest.mark.parametrize("seed", range(5))
def test_ece_and_bins_match_a_brute_force_count(seed):
    rng = np.random.default_rng(seed)
    n, n_bins = int(rng.integers(1, 400)), int(rng.integers(1, 20))
    conf, correct = rng.random(n), rng.random(n) < 0.6
    bins = reliability_bins(conf, correct, n_bins)
    counts, edges = np.histogram(conf, bins=n_bins, range=(0.0, 1.0))  # [lo, hi), the last [lo, 1]
    assert bins["count"].tolist() == counts.tolist() and bins["edges"] == pytest.approx(edges)
    gap = 0.0
    for b in range(n_bins):
        inside = [(c, ok) for c, ok in zip(conf, correct) if edges[b] <= c < edges[b + 1] or (b == n_bins - 1 and c == 1)]
        if inside:
            mean_conf = sum(c for c, _ in inside) / len(inside)
            accuracy = sum(ok for _, ok in inside) / len(inside)
            assert bins["confidence"][b] == pytest.approx(mean_conf) and bins["accuracy"][b] == pytest.approx(accuracy)
            gap += len(inside) / n * abs(accuracy - mean_conf)
        else:
            assert np.isnan(bins["confidence"][b]) and np.isnan(bins["accuracy"][b])
    assert ece(conf, correct, n_bins) == pytest.approx(gap)


def test_ece_and_bins_at_the_edges_by_hand():
    # 0.5 opens the upper bin of two; 1.0 closes it; 0.0 opens the lower one
    bins = reliability_bins([0.0, 0.5, 1.0, 0.25], [0, 1, 1, 0], n_bins=2)
    assert bins["count"].tolist() == [2, 2]
    assert bins["confidence"].tolist() == pytest.approx([0.125, 0.75])
    assert bins["accuracy"].tolist() == [0.0, 1.0]
    assert ece([0.0, 0.5, 1.0, 0.25], [0, 1, 1, 0], n_bins=2) == pytest.approx(0.5 * 0.125 + 0.5 * 0.25)
    assert ece([0.9], [True], n_bins=10) == pytest.approx(0.1) and ece([0.9], [False]) == pytest.approx(0.9)


@pytest.mark.parametrize("seed", range(4))
def test_risk_coverage_matches_a_brute_force_count(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 200))
    unc = rng.integers(0, 12, size=n) / 11 if seed % 2 else rng.random(n)
    wrong = rng.random(n) < 0.3
    coverage, risk = risk_coverage(unc, wrong)
    cuts = sorted(set(unc.tolist()))  # keep every span at most this uncertain
    assert coverage.tolist() == pytest.approx([np.mean(unc <= u) for u in cuts])
    assert risk.tolist() == pytest.approx([wrong[unc <= u].mean() for u in cuts])


def test_calibrated_ece_by_hand():
    def entity(s, pred, conf, **extra):
        return {"span": [s, s], "pred": pred, "candidate": False, "confidence": 0.5, "uncertainty": 0.5,
                "calibrated_confidence": conf, **extra}

    preds = [[entity(0, "PER", 0.8), entity(1, "LOC", 0.4), entity(2, "O", 0.99, candidate=True)]]
    golds = [[(0, 0, "PER"), (1, 1, "ORG")]]
    # two bins: 0.4 (wrong) alone in [0, .5), 0.8 (right) alone in [.5, 1]; the candidate is no entity
    assert calibrated_ece(preds, golds, n_bins=2) == pytest.approx(0.5 * 0.4 + 0.5 * 0.2)
    del preds[0][1]["calibrated_confidence"]
    assert calibrated_ece(preds, golds) is None
    assert calibrated_ece([[]], [[]]) is None
