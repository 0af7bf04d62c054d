"""Each step of inference/local/calibrate.py on inputs small enough to work out by hand:
the temperature (closed-form log-loss optimum), the candidate scan and its stop rule, the
ranking scores (scikit-learn's ROC AUC over the predicted entities only), the budget table."""
import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from dataloaders.readers import Sentence
from inference.local import calibrate

LABELS = ["O", "PER"]
GRID_STEP = math.log(calibrate.TEMPERATURES[1] / calibrate.TEMPERATURES[0])  # the grid is even in log T


# --- temperature -------------------------------------------------------------------------------

def optimum(p_top, p_rest, n_rest, accuracy):
    """The T at which the top label's tempered probability p^(1/T) / (p^(1/T) + n q^(1/T)) equals
    the accuracy: where the log-loss of rows sharing one probability vector is lowest."""
    return math.log(p_top / p_rest) / math.log(n_rest * accuracy / (1 - accuracy))


@pytest.mark.parametrize("probs, n_right, n_rows", [
    ([0.1, 0.9], 7, 10),        # over-confident: soften, T = ln 9 / ln(7/3) = 2.59
    ([0.4, 0.6], 9, 10),        # under-confident: sharpen, T = ln 1.5 / ln 9 = 0.18
    ([0.2, 0.8], 3, 4),         # T = ln 4 / ln 3 = 1.26
    ([0.6, 0.2, 0.2], 8, 10),   # three labels, top one first: T = ln 3 / ln 8 = 0.53
    ([0.25, 0.75], 75, 100),    # calibrated already: T = 1
])
def test_the_temperature_minimises_the_log_loss(probs, n_right, n_rows):
    top = int(np.argmax(probs))
    rest = [p for k, p in enumerate(probs) if k != top]
    expected = optimum(probs[top], rest[0], len(rest), n_right / n_rows)
    assert 0.1 < expected < 10  # inside the grid
    right = np.arange(n_rows) < n_right
    t = calibrate.fit_temperature(np.tile(probs, (n_rows, 1)), np.full(n_rows, top), right)
    assert t in calibrate.TEMPERATURES
    assert abs(math.log(t) - math.log(expected)) <= GRID_STEP  # the grid point next to the optimum


def test_the_temperature_of_two_groups_lies_between_theirs():
    # 0.9 right 70 % and 0.6 right 90 %: one T for both lies between their own optima (2.59, 0.18)
    probs = np.array([[0.1, 0.9]] * 10 + [[0.4, 0.6]] * 10)
    right = np.array([True] * 7 + [False] * 3 + [True] * 9 + [False])
    t = calibrate.fit_temperature(probs, np.ones(20, dtype=int), right)
    assert optimum(0.6, 0.4, 1, 0.9) < t < optimum(0.9, 0.1, 1, 0.7)


@pytest.mark.parametrize("right", [[True] * 5, [False] * 5, []])
def test_no_temperature_without_both_right_and_wrong_entities(right):
    n = len(right)
    probs = np.tile([0.3, 0.7], (n, 1)) if n else np.zeros((0, 2))
    assert calibrate.fit_temperature(probs, np.ones(n, dtype=int), np.array(right, dtype=bool)) == 1.0


# --- the candidate scan ------------------------------------------------------------------------

def one_word_corpus(entities, o_spans):
    """One-word sentences, one span each: `entities` (uncertainty, gold?) are predicted PER,
    `o_spans` (uncertainty, gold?) tagged O; gold? says whether the word is a gold PER."""
    outputs, sentences = [], []
    for rows, probs in ((entities, [0.2, 0.8]), (o_spans, [0.7, 0.3])):
        for unc, gold in rows:
            outputs.append(([(0, 0)], np.array([probs]), np.array([unc])))
            sentences.append(Sentence(["w"], [(0, 0, "PER")] if gold else []))
    return outputs, sentences


# 4 entities, the last one wrong: the predicted entities' error rate, the least gain a step
# must show, is 1/4. Ten O spans at uncertainty 1.0, 0.9, ..., 0.1; gold at 1.0, 0.8, 0.7.
ENTITIES = [(0.01, True), (0.02, True), (0.03, True), (0.04, False)]
O_SPANS = [(u / 10, u in (10, 8, 7)) for u in range(10, 0, -1)]
SHARES = (0.1, 0.2, 0.3, 0.4, 0.5)
# The threshold a share s of the ten O uncertainties lies above (linear between order
# statistics): 0.91, 0.82, 0.73, 0.64, 0.55, each letting one more O span through.
SCAN = [
    {"threshold": None, "candidates": 0, "never_listed": 3, "min_gain": 0.25},
    {"threshold": 0.91, "o_share": 0.1, "candidates": 1, "never_listed": 2, "gain": 1.0},  # 1.0 gold: taken
    {"threshold": 0.82, "o_share": 0.2, "candidates": 2, "never_listed": 2, "gain": 0.0},  # 0.9 not: stop
    # counted from the last step taken (1 candidate, 4 found) though no longer taken
    {"threshold": 0.73, "o_share": 0.3, "candidates": 3, "never_listed": 1, "gain": 0.5},
    {"threshold": 0.64, "o_share": 0.4, "candidates": 4, "never_listed": 0, "gain": 0.6667},
    {"threshold": 0.55, "o_share": 0.5, "candidates": 5, "never_listed": 0, "gain": 0.5},
]


def test_the_scan_stops_at_the_first_step_that_gains_too_little(monkeypatch):
    monkeypatch.setattr(calibrate, "CANDIDATE_SHARES", SHARES)
    chosen, rows = calibrate.scan_candidates(*one_word_corpus(ENTITIES, O_SPANS), LABELS)
    assert chosen == pytest.approx(0.91)  # the later steps gain enough again, but the scan stopped
    assert rows == [pytest.approx(row) for row in SCAN]


def test_a_step_gaining_exactly_the_error_rate_is_taken(monkeypatch):
    # 2 entities, 1 wrong: least gain 1/2; the first step lets 1.0 (gold) and 0.9 (not) through
    monkeypatch.setattr(calibrate, "CANDIDATE_SHARES", (0.2, 0.3))
    o_spans = [(u / 10, u == 10) for u in range(10, 0, -1)]
    chosen, rows = calibrate.scan_candidates(*one_word_corpus(ENTITIES[2:], o_spans), LABELS)
    assert rows[0]["min_gain"] == 0.5 and [row["gain"] for row in rows[1:]] == [0.5, 0.0]
    assert chosen == pytest.approx(0.82)


def test_no_threshold_when_the_first_step_gains_too_little(monkeypatch):
    monkeypatch.setattr(calibrate, "CANDIDATE_SHARES", SHARES)
    o_spans = [(u / 10, u in (8, 7)) for u in range(10, 0, -1)]  # the most uncertain O span is no entity
    chosen, rows = calibrate.scan_candidates(*one_word_corpus(ENTITIES, o_spans), LABELS)
    assert chosen == -1.0 and rows[1]["gain"] == 0.0
    # every later step is measured from no candidates at all: 0.9 and 0.8 -> 1 of 3 at 0.73
    assert [row["gain"] for row in rows[1:]] == pytest.approx([0.0, 0.0, 1 / 3, 0.5, 0.4], abs=1e-4)  # rounded to 4 places


def test_listed_gold_counts_by_hand():
    sentences = [Sentence(["a", "b", "c"], [(0, 0, "PER"), (1, 2, "PER")]), Sentence(["d"], [(0, 0, "PER")])]
    decoded = [[{"span": [0, 0], "candidate": False, "pred": "PER", "answer": "PER"},   # found, right
                {"span": [1, 1], "candidate": True, "pred": "O", "answer": "O"}],       # a candidate
               [{"span": [0, 0], "candidate": True, "pred": "O", "answer": "PER"}]]     # found by a candidate
    assert calibrate.listed_gold(decoded, sentences) == (2, 2, 0)
    decoded[0][0]["pred"] = "ORG"  # a wrong type still lists the gold span, and is a wrong entity
    assert calibrate.listed_gold(decoded, sentences) == (2, 2, 1)


# --- ranking scores ----------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(4))
def test_auroc_is_over_the_predicted_entities_only(seed):
    rng = np.random.default_rng(seed)
    n = 200
    unc = rng.random(n)
    entity = rng.random(n) < 0.6
    # candidates are wrong more often and more uncertain: counting them would raise the AUROC
    errors = np.where(entity, rng.random(n) < 0.3, rng.random(n) < 0.8)
    unc[~entity] += 0.5
    scores = calibrate.rank_scores(unc, errors, entity)
    assert scores["auroc"] == pytest.approx(roc_auc_score(errors[entity], unc[entity]))
    assert abs(scores["auroc"] - roc_auc_score(errors, unc)) > 0.02
    for budget in (5, 10, 20):  # distinct uncertainties: the top floor(b n) spans are sent
        sent = np.argsort(-unc)[:math.floor(budget / 100 * n)]
        assert scores[f"caught_{budget}"] == pytest.approx(errors[sent].sum() / errors.sum())


def test_rank_scores_without_entities_or_errors():
    scores = calibrate.rank_scores([0.3, 0.2], [True, False], [False, False])
    assert scores["auroc"] is None
    scores = calibrate.rank_scores([0.3, 0.2, 0.1], [False, False, False], [True, True, True])
    assert scores == {"auroc": None, "caught_5": None, "caught_10": None, "caught_20": None}


def test_dev_scores_read_errors_and_entities_from_the_records():
    records = [[{"pred": "PER", "answer": "PER", "candidate": False},
                {"pred": "PER", "answer": "O", "candidate": False},
                {"pred": "O", "answer": "PER", "candidate": True}],
               [{"pred": "O", "answer": "O", "candidate": True},
                {"pred": "PER", "answer": "PER", "candidate": False}]]
    # entities: right 0.1, wrong 0.5, right 0.3 -> the wrong one is the most uncertain
    scores = calibrate.dev_scores(records, [0.1, 0.5, 0.9, 0.7, 0.3])
    assert scores["auroc"] == 1.0
    # 5 listed spans: a 20 % budget sends the one at 0.9, a (candidate) error: 1 of 2 errors
    assert (scores["caught_5"], scores["caught_10"], scores["caught_20"]) == (0.0, 0.0, 0.5)


def test_entity_rows_by_hand():
    outputs = [([(0, 0), (0, 1), (1, 1)], np.array([[0.2, 0.8], [0.9, 0.1], [0.6, 0.4]]), np.zeros(3))]
    decoded = [[{"span": [0, 0], "pred": "PER", "answer": "O", "candidate": False},
                {"span": [1, 1], "pred": "O", "answer": "PER", "candidate": True}]]
    probs, pred, right = calibrate.entity_rows(decoded, outputs, LABELS)
    assert probs.tolist() == [[0.2, 0.8]] and pred.tolist() == [1] and right.tolist() == [False]


# --- one type's entry: threshold, listed spans, budget table, temperature, dev scores ----------

def test_a_type_entry_by_hand(monkeypatch):
    monkeypatch.setattr(calibrate, "CANDIDATE_SHARES", SHARES)
    entry, decoded = calibrate.calibrate_type(*one_word_corpus(ENTITIES, O_SPANS), LABELS)
    assert entry["candidate_threshold"] == pytest.approx(0.91)
    # listed: the 4 entities and the one candidate above 0.91
    assert entry["listed"] == 5 and sum(r["candidate"] for records in decoded for r in records) == 1
    table = entry["budget_table"]  # quantiles of 0.01, 0.02, 0.03, 0.04, 1.0 at 1001 levels
    assert len(table) == 1001
    assert [table[0], table[250], table[500], table[750], table[1000]] == pytest.approx([0.01, 0.02, 0.03, 0.04, 1.0])
    assert table[875] == pytest.approx(0.52)  # halfway from 0.04 to 1.0
    # 3 of 4 entities right at 0.8: T = ln 4 / ln 3
    assert abs(math.log(entry["temperature"]) - math.log(math.log(4) / math.log(3))) <= GRID_STEP
    # errors: the wrong entity (0.04) and the candidate (1.0, a gold PER tagged O)
    assert entry["dev"] == {"auroc": 1.0, "caught_5": 0.0, "caught_10": 0.0, "caught_20": 0.5}


def test_without_a_threshold_no_candidates_are_listed(monkeypatch):
    monkeypatch.setattr(calibrate, "CANDIDATE_SHARES", SHARES)
    o_spans = [(u / 10, u in (8, 7)) for u in range(10, 0, -1)]
    entry, decoded = calibrate.calibrate_type(*one_word_corpus(ENTITIES, o_spans), LABELS)
    assert entry["candidate_threshold"] == -1.0 and entry["listed"] == 4
    assert not any(r["candidate"] for records in decoded for r in records)
    assert entry["budget_table"][0] == pytest.approx(0.01) and entry["budget_table"][-1] == pytest.approx(0.04)
