"""bench/simulated_llm.py: the simulated LLM answers at its accuracy, the same way each time, and
only its informative kind carries probabilities (higher on right answers); bench/link_pays.py's
--seeds list."""
import random

import pytest

from bench.simulated_llm import answer_records


def records(n=400, seed=0):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = rng.choice(["PER", "LOC", "O"])
        out.append({"id": i, "sentence": f"w{i} x", "gold": [] if label == "O" else [[0, 0, label]],
                    "entity": [{"span": [0, 0], "pred": "PER", "uncertainty": rng.random()}]})
    return out


@pytest.mark.parametrize("accuracy", [0.3, 0.8])
def test_answers_at_the_accuracy_and_only_above_the_threshold(accuracy):
    recs = records(3000)
    out = answer_records(recs, 0.5, accuracy, "flat", ["PER", "LOC"], seed=1)
    sent = [(r, s) for r, s in zip(recs, out) if r["entity"][0]["uncertainty"] > 0.5]
    assert all("llm_answer" not in s["entity"][0] for r, s in zip(recs, out) if r["entity"][0]["uncertainty"] <= 0.5)
    gold = lambda r: r["gold"][0][2] if r["gold"] else "O"  # noqa: E731
    right = sum(s["entity"][0]["llm_answer"] == gold(r) for r, s in sent) / len(sent)
    assert abs(right - accuracy) < 0.05  # 1,500 sent: 3.5 standard errors and all("llm_probs" not in s["entity"][0] for _, s in sent)


def test_answers_repeat_and_a_higher_accuracy_only_turns_wrong_answers_right():
    recs = records()
    low = answer_records(recs, -1, 0.5, "flat", ["PER", "LOC"], seed=3)
    assert low == answer_records(recs, -1, 0.5, "flat", ["PER", "LOC"], seed=3)
    high = answer_records(recs, -1, 0.7, "flat", ["PER", "LOC"], seed=3)
    gold = lambda r: r["gold"][0][2] if r["gold"] else "O"  # noqa: E731
    for r, a, b in zip(recs, low, high):
        if a["entity"][0]["llm_answer"] == gold(r):
            assert b["entity"][0]["llm_answer"] == gold(r)


def test_informative_probabilities_are_higher_on_right_answers():
    recs = records(2000)
    out = answer_records(recs, -1, 0.5, "informative", ["PER", "LOC"], seed=0)
    gold = lambda r: r["gold"][0][2] if r["gold"] else "O"  # noqa: E731
    p = {True: [], False: []}
    for r, o in zip(recs, out):
        span = o["entity"][0]
        assert sum(span["llm_probs"].values()) == pytest.approx(1.0)
        p[span["llm_answer"] == gold(r)].append(span["llm_probs"][span["llm_answer"]])
    assert sum(p[True]) / len(p[True]) > sum(p[False]) / len(p[False]) + 0.2


def test_link_pays_seeds_are_ranges_or_a_comma_list_of_them():
    import argparse

    from bench.link_pays import seed_range

    assert seed_range("3") == (3,)
    assert seed_range("16-23") == tuple(range(16, 24))
    assert seed_range("0-2,24-25") == (0, 1, 2, 24, 25)
    for bad in ("5-3", "a", "0-15,", "1-x"):
        with pytest.raises(argparse.ArgumentTypeError):
            seed_range(bad)
