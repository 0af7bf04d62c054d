import random

import pytest

from bench.break_even_model import ERROR_MODELS, counts, sampled_f1
from inference.reports.link_metrics import link_report

LABELS = ["LOC", "MISC", "ORG", "PER"]


def records(n=600, seed=1):
    """Sentences of three spans: local labels right about 70% of the time, uncertainty higher
    where they are wrong, some spans no gold entity."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        entity, gold = [], []
        for j in range(3):
            answer = rng.choice(LABELS + ["O"])
            right = rng.random() < 0.7
            pred = answer if right else rng.choice([x for x in LABELS + ["O"] if x != answer])
            entity.append({"entity": f"w{j}", "span": [j, j], "pred": pred, "answer": answer,
                           "uncertainty": rng.uniform(0, 0.6) if right else rng.uniform(0.2, 1.0)})
            if answer != "O":
                gold.append([j, j, answer])
        out.append({"id": i, "sentence": "w0 w1 w2", "entity": entity, "gold": gold})
    return out


def test_an_always_right_llm_gives_the_oracle_f1_and_no_llm_the_local_one():
    recs = records()
    oracle = [{**r, "entity": [{**s, "llm_answer": s["answer"]} for s in r["entity"]]} for r in recs]
    for t in (0.1, 0.5, 0.9):
        c, report = counts(recs, t, LABELS), link_report(oracle, t)
        assert c.linked_f1(1.0) == pytest.approx(report["linked"]["f1"])
        assert c.local_f1 == pytest.approx(report["local"]["f1"])
        assert c.sent == report["sent"]


@pytest.mark.parametrize("error_model", ERROR_MODELS)
@pytest.mark.parametrize("a", [0.0, 0.5, 0.8])
def test_the_expected_f1_matches_sampled_runs(error_model, a):
    recs = records(n=2000)
    expected = counts(recs, 0.3, LABELS, error_model).linked_f1(a)
    runs = [sampled_f1(recs, 0.3, LABELS, a, error_model, seed) for seed in range(5)]
    assert sum(runs) / len(runs) == pytest.approx(expected, abs=0.004)


def test_a_non_entity_biased_llm_predicts_fewer_entities():
    recs = records()
    uniform, biased = counts(recs, 0.3, LABELS, "uniform"), counts(recs, 0.3, LABELS, "nonentity")
    assert biased.wrong_pred < uniform.wrong_pred
    assert sampled_f1(recs, 0.3, LABELS, 0.6, "nonentity") != sampled_f1(recs, 0.3, LABELS, 0.6, "uniform")


@pytest.mark.parametrize("error_model", ERROR_MODELS)
def test_break_even_and_gains_solve_for_the_accuracy(error_model):
    c = counts(records(), 0.3, LABELS, error_model)
    even = c.accuracy_for(c.local_f1)
    assert 0 < even < 1 and c.linked_f1(even) == pytest.approx(c.local_f1)
    assert c.linked_f1(even - 0.05) < c.local_f1 < c.linked_f1(even + 0.05)
    plus3 = c.accuracy_for(c.local_f1 + 0.03)
    assert plus3 > even and c.linked_f1(plus3) == pytest.approx(c.local_f1 + 0.03)
    assert c.accuracy_for(c.linked_f1(1.0) + 0.01) > 1  # beyond even an oracle


def test_nothing_sent_has_no_break_even():
    c = counts(records(), 1.0, LABELS)
    assert c.sent == 0 and c.accuracy_for(c.local_f1) is None and c.linked_f1(0.3) == c.local_f1
