"""The fuse gate (inference/fuse/): its three-outcome model against scikit-learn, the agreement
shift against its closed form and repeated draws, F1 contributions and the significance test
against hand counts, dev's choice per budget, a run's adaptation, and each label decided once."""
import dataclasses
import json
import math
import random

import numpy as np
import pytest

from inference.fuse.fit import fit_gate, fit_linear
from inference.reports.dev_gain import Answered, budget_thresholds, gold_label
from inference.fuse.gate import Gate, best_choice, expected_contribution, f1_contribution
from inference.fuse.model import Linear, gate_features
from inference.fuse.run import Run, adapt, sent_answered, settle
from inference.fuse.shift import ShiftModel
from inference.records import decide

LABELS = ("LOC", "MISC", "ORG", "PER")
OPTIONS = LABELS + ("O",)


def logit(p):
    return math.log(p / (1 - p))


def flat_shift(z0, a, c, reference=0.0, error=0.0):
    """A shift model whose P(local right) is sigmoid(z0) and P(LLM right) is a for every span."""
    return ShiftModel(Linear([0.0] * 3, [1.0] * 3, [[0.0] * 3], [z0]), Linear([0.0] * 3, [1.0] * 3, [[0.0] * 3],
                      [logit(a)]), c, [[0.0, reference, error]])


def spans(n_agree, n_disagree):
    return ([{"pred": "PER", "llm_answer": "PER", "uncertainty": 0.5}] * n_agree
            + [{"pred": "PER", "llm_answer": "LOC", "uncertainty": 0.5}] * n_disagree)


# -- the shift -------------------------------------------------------------------------------

@pytest.mark.parametrize("z0, a, c, agree, total", [(0.0, 0.7, 0.25, 60, 100), (1.0, 0.8, 0.25, 45, 100),
                                                     (-0.5, 0.6, 0.1, 70, 200)])
def test_the_shift_solves_the_agreement_equation(z0, a, c, agree, total):
    # agree / total = p a + (1 - p)(1 - a) c  =>  p = (rate - (1 - a) c) / (a - (1 - a) c)
    p = (agree / total - (1 - a) * c) / (a - (1 - a) * c)
    found, _ = flat_shift(z0, a, c).estimate(spans(agree, total - agree))
    assert found == pytest.approx(logit(p) - z0, abs=1e-6)


def test_the_shifts_standard_error_against_repeated_draws():
    z0, a, c, n, true_shift = 0.5, 0.7, 0.25, 300, -0.5
    p = 1 / (1 + math.exp(-(z0 + true_shift)))
    rate = p * a + (1 - p) * (1 - a) * c
    rng, found = random.Random(0), []
    for _ in range(4000):
        agree = sum(rng.random() < rate for _ in range(n))
        found.append(logit((agree / n - (1 - a) * c) / (a - (1 - a) * c)) - z0)
    spread = float(np.std(found, ddof=1))
    agree = round(rate * n)  # a draw at the true rate: the estimate sits at the true shift
    assert flat_shift(z0, a, c).estimate(spans(agree, n - agree))[1] == pytest.approx(spread, rel=0.1)


def test_a_runs_shift_is_relative_to_dev_clipped_and_in_both_errors():
    model = flat_shift(0.0, 0.7, 0.25, reference=0.3, error=0.1)
    found, error = model.estimate(spans(60, 40))
    shift, sigmas = model.measure(spans(60, 40), 0.0)
    assert shift == pytest.approx(found - 0.3) and sigmas == pytest.approx((found - 0.3) / math.hypot(error, 0.1))
    assert model.measure(spans(2, 998), 0.0)[0] == -3.0  # the local model hardly ever agrees: clipped
    # an LLM no likelier right than a coincidence cannot tell a shift
    assert flat_shift(0.0, 0.2, 0.25).estimate(spans(10, 90)) is None
    assert flat_shift(0.0, 0.2, 0.25).measure(spans(10, 90), 0.0) == (0.0, 0.0)


def test_the_shift_models_outcomes_are_its_agreement_model_given_a_disagreement():
    # local right with p = sigmoid(z0 + delta), the LLM with a, independently; two wrong labels
    # coincide with c. Given that they differ: LLM right a (1 - p), local right p (1 - a),
    # neither (1 - a)(1 - p)(1 - c), normalised (hand-worked at z0 = 0.5, delta = -1, a = 0.6)
    p, a, c = 1 / (1 + math.exp(0.5)), 0.6, 0.25
    w = [a * (1 - p), p * (1 - a), (1 - a) * (1 - p) * (1 - c)]
    got = flat_shift(0.5, a, c).outcomes({"pred": "PER", "llm_answer": "LOC", "uncertainty": 0.5}, -1.0)
    assert got == pytest.approx([x / sum(w) for x in w]) and sum(got) == pytest.approx(1.0)


# -- contributions, the test, the model -----------------------------------------------------

def test_f1_contributions_against_hand_counts():
    # F1 = 2 TP / (P + G): at F1 0.9 (price 0.45) an added entity pays when right with p > 0.45
    assert f1_contribution("PER", "O", "PER", 0.45) == pytest.approx(0.55)  # a right entity added
    assert f1_contribution("PER", "O", None, 0.45) == pytest.approx(-0.45)  # a wrong one
    assert f1_contribution("O", "PER", "PER", 0.45) == pytest.approx(-0.55)  # a right one removed
    assert f1_contribution("LOC", "PER", "LOC", 0.45) == 1 and f1_contribution("LOC", "PER", "PER", 0.45) == -1
    assert f1_contribution("LOC", "PER", None, 0.45) == 0
    # E[c] for the O -> entity switch beats 0 exactly when the exact F1 change does (TP 9, P 10, G 10)
    for p in (0.40, 0.50):
        change = p * 20 / 21 + (1 - p) * 18 / 21 - 0.9
        mean, square = expected_contribution([p, 1 - p, 0.0], "PER", "O", 0.45)
        assert (change > 0) == (mean > 0) and square == pytest.approx(p * 0.55 ** 2 + (1 - p) * 0.45 ** 2)


def test_the_choice_is_the_largest_significant_gain_and_the_test_is_the_sign_test():
    # 20 right against 8 wrong: 12 >= 2 sqrt(28) = 10.6; 18 against 8: 10 < 2 sqrt(26) = 10.2
    assert best_choice({"every": (12, 28)}) == "every"
    assert best_choice({"every": (10, 26)}) == best_choice({"every": (-12, 28)}) == "keep"
    assert best_choice({"every": (12, 28), "span": (13, 30)}) == "span"  # both pass: the larger
    assert best_choice({"every": (12, 28), "span": (14, 60)}) == "every"  # the larger does not pass
    # local F1 0.4 (price 0.2): 30 right entities added (+0.8) and 45 wrong (-0.2) gain 15 with
    # sqrt(30 * 0.64 + 45 * 0.04) = 4.58: significant, where right against wrong (30 vs 45) loses
    c = [f1_contribution("PER", "O", "PER", 0.2)] * 30 + [f1_contribution("LOC", "O", None, 0.2)] * 45
    assert best_choice({"span": (sum(c), sum(x * x for x in c))}) == "span"


def test_the_gates_probabilities_are_scikit_learns():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 7)) * [1, 2, 0.5, 1, 3, 1, 1] + 5
    y = rng.integers(0, 3, 300)
    fitted = fit_linear(x, y, 3)
    reference = LogisticRegression(C=1.0, max_iter=1000).fit(
        np.vstack([(x - x.mean(0)) / x.std(0), np.zeros((3, 7))]), np.concatenate([y, [0, 1, 2]]),
        sample_weight=np.concatenate([np.ones(300), np.full(3, 1e-3)]))
    gate = Gate(fitted, [])
    span = {"uncertainty": 0.3, "confidence": 0.6, "pred": "PER", "llm_answer": "LOC",
            "llm_probs": {"LOC": 0.7, "PER": 0.2, "O": 0.1}}
    want = reference.predict_proba(((np.array(gate_features(span)) - x.mean(0)) / x.std(0))[None])[0]
    assert gate.outcomes(span) == pytest.approx(want.tolist(), abs=1e-9)


def test_a_span_exactly_at_the_threshold_is_not_sent():
    span = {"pred": "LOC", "uncertainty": 0.5, "llm_answer": "PER"}
    assert decide(span, 0.5) == "LOC" and decide(span, 0.4999) == "PER"
    assert list(sent_answered([{"entity": [span]}], 0.5)) == [] and list(sent_answered([{"entity": [span]}], 0.49)) == [span]


# -- on records ------------------------------------------------------------------------------

def records(n, seed, local_right, llm_right=0.5):
    """n labelled sentences of 3 spans; the local label right with probability local_right(u), the
    LLM (answering every span) right with probability llm_right, independently."""
    rng, out = random.Random(seed), []
    for i in range(n):
        gold, ents = [], []
        for j in range(3):
            label, u = rng.choice(OPTIONS), rng.random()
            if label != "O":
                gold.append([j, j, label])
            wrong = [x for x in OPTIONS if x != label]
            pred = label if rng.random() < local_right(u) else rng.choice(wrong)
            answer = label if rng.random() < llm_right else rng.choice(wrong)
            ents.append({"span": [j, j], "pred": pred, "uncertainty": u, "confidence": 1 - u,
                         "llm_answer": answer, "llm_status": "linked", "answer": label})  # "answer": gold, a trap
        out.append({"id": i, "tokens": ["w"] * 3, "entity": ents, "gold": gold})
    return out


def clean(u):
    return 1 - 0.6 * u


def shifted(u):
    return 0.7 * (1 - 0.6 * u)


def answered(recs):
    return [Answered(s, gold_label(r, s)) for r in recs for s in r["entity"]]


@pytest.fixture(scope="module")
def gate():
    dev = records(600, 1, clean)
    thresholds = budget_thresholds(dev)
    fitted, _ = fit_gate(dev, answered(dev), thresholds)
    assert fitted.shift is not None and fitted.model is not None
    return fitted, thresholds


def test_dev_chooses_keep_or_every_as_the_test_says(gate):
    # by hand: where dev chose "every", every answer's contributions pass the test; where it
    # kept the local labels, they do not (else "every" would have been a candidate)
    for n, llm, seed in [(60, 0.6, 1), (60, 0.7, 2), (120, 0.6, 3), (600, 0.6, 1), (60, 0.9, 4), (200, 0.3, 5)]:
        dev = records(n, seed, clean, llm)
        thresholds = budget_thresholds(dev)
        fitted, info = fit_gate(dev, answered(dev), thresholds)
        json.dumps(info, allow_nan=False)
        price = fitted.price
        for b, t in thresholds.items():
            c = [f1_contribution(a.span["llm_answer"], a.span["pred"], a.gold, price) for a in answered(dev)
                 if a.span["uncertainty"] > t and a.span["llm_answer"] != a.span["pred"]]
            passes = sum(c) > 0 and sum(c) >= 2 * math.sqrt(sum(x * x for x in c))
            assert info["budgets"][str(b)] != "every" or passes
            assert info["budgets"][str(b)] != "keep" or not passes
            assert fitted.choice(t) == info["budgets"][str(b)]


def test_a_gate_on_too_few_disagreements_keeps_every_local_label():
    dev = records(30, 1, lambda u: 1.0, 1.0)  # both always right: no disagreement
    fitted, info = fit_gate(dev, answered(dev), budget_thresholds(dev))
    assert fitted.model is None and all(c == "keep" for _, c in fitted.budgets) and "0 disagreements" in info["why"]
    test = records(50, 2, clean)
    settle(test, fitted, 0.0)
    assert all(s["llm_pred"] == s["pred"] for r in test for s in r["entity"])


def test_a_run_like_dev_does_what_dev_chose_and_a_shifted_one_chooses_again(gate):
    fitted, thresholds = gate
    t = thresholds[0.5]
    like_dev, worse = records(600, 2, clean), records(600, 3, shifted)
    every = dataclasses.replace(fitted, budgets=[[x, "every"] for x, _ in fitted.budgets])
    run = adapt(every, lambda: sent_answered(like_dev, t), t)
    assert abs(run.sigmas) < 2 and abs(run.shift) < 0.3 and run.choice == run.dev_choice == "every"
    run = adapt(every, lambda: sent_answered(worse, t), t)
    assert run.sigmas <= -2 and run.shift < -0.3 and run.choice in ("every", "span")
    # unlike dev (2 standard errors or more), the outcomes are the shift model's at the shift
    # measured; like dev, the gate's own, whatever the shift
    span = next(sent_answered(worse, t))
    assert run.outcomes(span) == pytest.approx(every.shift.outcomes(span, run.shift))
    assert Run(every, "span", "span", -1.0, -2.0).outcomes(span) == pytest.approx(every.shift.outcomes(span, -1.0))
    assert Run(every, "span", "span", -1.0, -1.9).outcomes(span) == pytest.approx(every.outcomes(span))
    assert every.shift.outcomes(span, -1.0) != pytest.approx(every.outcomes(span))
    # a gate that kept the local labels at every budget: the shifted run opens it, and gains
    closed = dataclasses.replace(fitted, budgets=[[x, "keep"] for x, _ in fitted.budgets])
    opened = adapt(closed, lambda: sent_answered(worse, t), t)
    assert opened.choice != "keep" == opened.dev_choice
    fused = json.loads(json.dumps(worse))
    settle(fused, closed, t)
    local = sum(s["pred"] == gold_label(r, s) for r in worse for s in r["entity"])
    assert sum(s["llm_pred"] == gold_label(r, s) for r in fused for s in r["entity"]) > local


def test_a_closed_budget_opens_only_on_a_significant_expected_gain():
    # by hand: every span a type for a type, P(LLM right) 0.5 and P(local right) 0.3 (the model's
    # intercepts, no features): each is taken (0.5 - 0.3 > 0), c = +1 or -1, so over n spans
    # E[sum c] = 0.2 n and E[sum c^2] = 0.8 n: 0.2 n >= 2 sqrt(0.8 n) from n = 80
    model = Linear([0.0] * 7, [1.0] * 7, [[0.0] * 7] * 3, [math.log(0.5), math.log(0.3), math.log(0.2)])
    closed = Gate(model, [[0.0, "keep"]], 0.45, flat_shift(0.0, 0.2, 0.25))  # its LLM cannot tell a shift
    span = {"pred": "PER", "llm_answer": "LOC", "uncertainty": 0.5, "confidence": 0.5}
    assert closed.outcomes(span) == pytest.approx([0.5, 0.3, 0.2])
    assert adapt(closed, lambda: [span] * 79, 0.0).choice == "keep"
    assert adapt(closed, lambda: [span] * 80, 0.0).choice in ("every", "span")
    # a model that says the local label is likelier right never opens, however many spans
    sure = dataclasses.replace(closed, model=Linear([0.0] * 7, [1.0] * 7, [[0.0] * 7] * 3,
                                                    [math.log(0.3), math.log(0.5), math.log(0.2)]))
    assert adapt(sure, lambda: [span] * 10_000, 0.0).choice == "keep"


def test_the_final_labels_read_no_gold_and_no_order(gate):
    fitted, thresholds = gate
    t = thresholds[0.2]
    test = records(400, 4, shifted)
    blind = [{**{k: v for k, v in rec.items() if k != "gold"},
              "entity": [{k: v for k, v in s.items() if k != "answer"} for s in rec["entity"]]} for rec in test]
    shuffled = random.Random(0).sample(json.loads(json.dumps(test)), len(test))
    runs = [settle(recs, fitted, t)[0] for recs in (test, blind, shuffled)]
    assert runs[0] == runs[1] == runs[2]
    by_id = {r["id"]: [s["llm_pred"] for s in r["entity"]] for r in shuffled}
    assert [[s["llm_pred"] for s in r["entity"]] for r in test] == [[s["llm_pred"] for s in r["entity"]]
                                                                      for r in blind] == [by_id[r["id"]] for r in test]
    assert settle(test, fitted, t)[1] is False  # settled once: settling again changes nothing


def test_a_saved_gate_loads_as_it_was_and_a_damaged_one_is_one_line(gate, tmp_path):
    fitted, _ = gate
    path = str(tmp_path / "gate.json")
    fitted.save(path)
    loaded = Gate.load(path)
    assert loaded == fitted
    data = json.load(open(path))
    for damage in (lambda d: d["budgets"][0].__setitem__(1, "sometimes"), lambda d: d["shift"].__setitem__("coincide", 3),
                   lambda d: d["model"]["coef"].pop()):
        broken = json.loads(json.dumps(data))
        damage(broken)
        (tmp_path / "gate.json").write_text(json.dumps(broken))
        with pytest.raises(ValueError) as err:
            Gate.load(path)
        assert str(err.value).startswith(f"{path}: a damaged link calibration") and "\n" not in str(err.value)
        assert "python -m inference.llm.calibrate_link" in str(err.value)
