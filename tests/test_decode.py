import numpy as np
import pytest
import torch

from inference.local.decode import decode_sentence

LABELS = ["O", "PER", "LOC"]
WORDS = ["w0", "w1", "w2", "w3", "w4", "w5"]


def all_spans(n, max_len=4):
    return [(s, e) for s in range(n) for e in range(s, min(n, s + max_len))]


def scored(spans, scores, n_labels=3):
    """probs where span -> (label index, its prob); the rest of the mass on O (or label 1)."""
    probs = np.zeros((len(spans), n_labels))
    probs[:, 0] = 0.99
    probs[:, 1] = 0.01
    for i, sp in enumerate(spans):
        if sp in scores:
            k, p = scores[sp]
            probs[i] = (1 - p) / (n_labels - 1)
            probs[i, k] = p
    return probs


def decode(scores, unc=None, **kw):
    spans = all_spans(len(WORDS))
    probs = scored(spans, scores)
    unc = 1 - probs.max(1) if unc is None else np.array([unc.get(sp, 0.0) for sp in spans])
    return decode_sentence(spans, probs, unc, LABELS, words=WORDS, **kw)


def kept(out, candidate=False):
    return [(*r["span"], r["pred"]) for r in out if r["candidate"] == candidate]


def test_output_fields():
    out = decode({(1, 2): (1, 0.9)})
    assert out == [{"entity": "w1 w2", "span": [1, 2], "pred": "PER", "confidence": pytest.approx(0.9),
                    "uncertainty": pytest.approx(0.1), "candidate": False}]


def test_nested_keeps_the_more_confident():
    assert kept(decode({(0, 2): (1, 0.9), (1, 1): (2, 0.8)})) == [(0, 2, "PER")]
    assert kept(decode({(0, 2): (1, 0.7), (1, 1): (2, 0.8), (3, 3): (2, 0.6)})) == [(1, 1, "LOC"), (3, 3, "LOC")]


def test_crossing_spans_greedy_by_confidence():
    out = decode({(0, 1): (1, 0.7), (1, 2): (2, 0.8), (2, 3): (1, 0.75), (3, 4): (1, 0.6)})
    assert kept(out) == [(1, 2, "LOC"), (3, 4, "PER")]  # sorted by start, flat


def test_ties_go_to_earlier_then_shorter_span():
    assert kept(decode({(1, 2): (1, 0.8), (0, 1): (2, 0.8)})) == [(0, 1, "LOC")]
    assert kept(decode({(0, 1): (1, 0.8), (0, 0): (2, 0.8)})) == [(0, 0, "LOC")]


def test_no_candidates_without_threshold():
    out = decode({(0, 0): (1, 0.9)}, unc={(2, 2): 0.9})
    assert all(not r["candidate"] for r in out)


def test_candidates_above_threshold_and_off_the_entities():
    # (2, 2) O-tagged and unsure but inside the entity (1, 3); (4, 4) exactly at the threshold
    unc = {(2, 2): 0.6, (4, 4): 0.4, (5, 5): 0.45, (0, 0): 0.2}
    out = decode({(1, 3): (1, 0.9)}, unc=unc, candidate_threshold=0.4)
    assert kept(out) == [(1, 3, "PER")]
    assert kept(out, candidate=True) == [(5, 5, "O")]
    cand = [r for r in out if r["candidate"]][0]
    assert cand["uncertainty"] == pytest.approx(0.45) and cand["confidence"] == pytest.approx(0.99)


def test_candidates_ranked_by_best_entity_probability():
    spans = [(0, 0), (0, 1), (1, 1), (2, 2)]
    probs = np.array([[0.5, 0.3, 0.2],    # most uncertain, weaker entity signal
                      [0.55, 0.0, 0.45],  # overlaps both (0,0) and (1,1), best non-O prob
                      [0.6, 0.4, 0.0],
                      [0.9, 0.1, 0.0]])
    out = decode_sentence(spans, probs, 1 - probs.max(1), LABELS, candidate_threshold=0.3)
    assert kept(out, candidate=True) == [(0, 1, "O")]
    assert "entity" not in out[0]


def random_sentence(rng, n_words):
    spans = all_spans(n_words)
    logits = rng.normal(size=(len(spans), 3)) * 2
    logits[:, 0] += 2.5  # mostly O, as in real data
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    unc = 1 - probs.max(1)
    gold, w = [], 0
    while w < n_words:  # random non-overlapping gold spans
        e = min(n_words - 1, w + int(rng.integers(0, 3)))
        if rng.random() < 0.4:
            gold.append((w, e, LABELS[int(rng.integers(1, 3))]))
        w = e + 1
    return spans, probs, unc, gold


def overlap(a, b):
    return a["span"][0] <= b["span"][1] and b["span"][0] <= a["span"][1]


def test_random_sentences_flat_and_gold_free():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 12))
        spans, probs, unc, gold = random_sentence(rng, n)
        blind = decode_sentence(spans, probs, unc, LABELS, candidate_threshold=0.3)
        seen = decode_sentence(spans, probs, unc, LABELS, candidate_threshold=0.3, gold=gold)
        assert [{k: v for k, v in r.items() if k != "answer"} for r in seen] == blind
        answers = {(s, e): lab for s, e, lab in gold}
        assert [r["answer"] for r in seen] == [answers.get(tuple(r["span"]), "O") for r in seen]
        for i, a in enumerate(blind):
            assert not any(overlap(a, b) for b in blind[i + 1:])
        assert blind == sorted(blind, key=lambda r: r["span"])
        for r in blind:  # entities tagged non-O, candidates tagged O
            assert (r["pred"] == "O") == r["candidate"]


def test_paper_protocol_lists_every_gold_span():
    spans = all_spans(len(WORDS), max_len=2)
    probs = scored(spans, {(0, 0): (1, 0.9), (2, 3): (2, 0.6)})
    unc = 1 - probs.max(1)
    gold = [(0, 0, "PER"), (2, 2, "LOC"), (3, 5, "PER")]  # (3, 5) is longer than any enumerated span
    out = decode_sentence(spans, probs, unc, LABELS, gold=gold, paper_protocol=True, words=WORDS)
    by_span = {tuple(r["span"]): r for r in out}
    assert set(by_span) == {(0, 0), (2, 2), (2, 3), (3, 5)}
    assert "gold_informed" not in by_span[(0, 0)] and by_span[(0, 0)]["answer"] == "PER"
    assert by_span[(2, 3)]["answer"] == "O"
    enumerated = by_span[(2, 2)]
    assert enumerated["gold_informed"] and enumerated["candidate"] and enumerated["pred"] == "O"
    assert enumerated["confidence"] == pytest.approx(0.99) and enumerated["answer"] == "LOC"
    assert by_span[(3, 5)] == {"entity": "w3 w4 w5", "span": [3, 5], "pred": "O", "confidence": 0.0,
                               "uncertainty": 1.0, "candidate": True, "gold_informed": True, "answer": "PER"}
    with pytest.raises(ValueError, match="needs gold"):
        decode_sentence(spans, probs, unc, LABELS, paper_protocol=True)


def test_accepts_tensors():
    spans = all_spans(4)
    probs = scored(spans, {(1, 2): (2, 0.8)})
    out = decode_sentence(spans, torch.tensor(probs, dtype=torch.float32),
                          torch.tensor(1 - probs.max(1)), LABELS)
    assert kept(out) == [(1, 2, "LOC")] and isinstance(out[0]["confidence"], float)


def test_bad_input_is_a_clear_error():
    spans = all_spans(3)
    probs = scored(spans, {})
    with pytest.raises(ValueError, match="start with 'O'"):
        decode_sentence(spans, probs, probs[:, 0], ["PER", "O", "LOC"])
    with pytest.raises(ValueError, match="probs must be"):
        decode_sentence(spans, probs[:, :2], probs[:, 0], LABELS)
    with pytest.raises(ValueError, match="uncertainty must be"):
        decode_sentence(spans, probs, probs[:-1, 0], LABELS)
    with pytest.raises(ValueError, match="within 3 words"):
        decode_sentence([(2, 1)] + spans[1:], probs, probs[:, 0], LABELS)
    with pytest.raises(ValueError, match=r"\(0, 2\) is not .* within 2 words"):
        decode_sentence(spans, probs, probs[:, 0], LABELS, words=["a", "b"])
