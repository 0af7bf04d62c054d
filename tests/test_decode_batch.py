"""`decode_batch` (all sentences of a batch in a few array operations) against the per-sentence
decoder it replaced, kept here as the reference; `span_arrays` against `enumerate_spans`; and the
batch's dev-temperature rescoring against the per-sentence one."""

import numpy as np
import pytest
import torch

from dataloaders.spans import enumerate_spans, span_arrays
from inference.local.decode import decode_batch, decode_sentence
from inference.local.learned.rescoring import Rescorer

LABELS = ["O", "PER", "LOC", "ORG"]


def reference_decode(spans, probs, uncertainty, labels, candidate_threshold=None, gold=None,
                     paper_protocol=False, words=None):
    """The per-sentence decoder as it was before `decode_batch` (one span at a time)."""
    probs = probs.detach().float().cpu().numpy()
    uncertainty = uncertainty.detach().float().cpu().numpy()
    n_words = len(words) if words is not None else max((e + 1 for _, e in spans), default=0)
    best, top = probs.argmax(1), probs.max(1)

    def record(span, pred, confidence, unc, candidate):
        s, e = span
        rec = {"entity": " ".join(words[s:e + 1])} if words is not None else {}
        rec.update(span=[int(s), int(e)], pred=pred, confidence=float(confidence), uncertainty=float(unc),
                   candidate=candidate)
        return rec

    def greedy(idx, score, taken):
        starts = np.array([spans[i][0] for i in idx])
        ends = np.array([spans[i][1] for i in idx])
        kept = []
        for j in np.lexsort((ends, starts, -score[idx])):
            s, e = spans[idx[j]]
            if not any(taken[s:e + 1]):
                taken[s:e + 1] = [True] * (e - s + 1)
                kept.append(int(idx[j]))
        return kept

    def scored(i, candidate):
        return record(spans[i], labels[best[i]], top[i], uncertainty[i], candidate)

    taken = [False] * n_words
    records = [scored(i, False) for i in greedy(np.flatnonzero(best != 0), top, taken)]
    if candidate_threshold is not None:
        unsure = np.flatnonzero((best == 0) & (uncertainty > candidate_threshold))
        records += [scored(i, True) for i in greedy(unsure, probs[:, 1:].max(1), taken)]
    if gold is not None:
        gold = [(int(s), int(e), label) for s, e, label in gold]
        if paper_protocol:
            listed = {tuple(r["span"]) for r in records}
            index = {(int(s), int(e)): i for i, (s, e) in enumerate(spans)}
            for s, e, _ in gold:
                if (s, e) not in listed:
                    i = index.get((s, e))
                    rec = scored(i, True) if i is not None else record((s, e), "O", 0.0, 1.0, True)
                    rec["gold_informed"] = True
                    records.append(rec)
        answer = {(s, e): label for s, e, label in gold}
        for rec in records:
            rec["answer"] = answer.get(tuple(rec["span"]), "O")
    return sorted(records, key=lambda r: r["span"])


def random_batch(rng, n_sentences, max_span_len):
    """Sentences of random lengths (some empty) with coarse probabilities, so that ties are common."""
    lengths = rng.integers(0, 12, n_sentences).tolist()
    counts = [len(enumerate_spans(n, max_span_len)) for n in lengths]
    n = sum(counts)
    logits = torch.from_numpy(rng.integers(0, 4, (n, len(LABELS))).astype(np.float32))
    logits[:, 0] += torch.from_numpy(rng.integers(0, 4, n).astype(np.float32))  # mostly O
    probs = torch.softmax(logits, -1)
    unc = torch.from_numpy(rng.integers(0, 10, n).astype(np.float32) / 10)
    words = [[f"w{i}" for i in range(k)] for k in lengths]
    golds = []
    for k in lengths:  # gold spans, some longer than max_span_len (not enumerated), some repeated
        gold = []
        for _ in range(rng.integers(0, 3)):
            s = int(rng.integers(0, k)) if k else 0
            e = min(k - 1, s + int(rng.integers(0, max_span_len + 2)))
            if k:
                gold.append((s, e, LABELS[1 + int(rng.integers(0, 3))]))
        golds.append(gold + gold[:1] if rng.random() < 0.2 else gold)
    return lengths, counts, probs, unc, words, golds


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("threshold", [None, 0.35])
@pytest.mark.parametrize("paper_protocol", [False, True])
def test_batch_decodes_as_the_per_sentence_reference(seed, threshold, paper_protocol):
    rng = np.random.default_rng(seed)
    max_span_len = int(rng.integers(1, 6))
    lengths, counts, probs, unc, words, golds = random_batch(rng, 9, max_span_len)
    starts, ends = span_arrays(lengths, max_span_len)
    with_words = seed % 2 == 0
    decoded, rows = decode_batch(starts, ends, counts, probs, unc, LABELS, threshold,
                                 golds if seed % 3 or paper_protocol else None, paper_protocol,
                                 words if with_words else None)
    lo = 0
    for b, n in enumerate(counts):
        spans = enumerate_spans(lengths[b], max_span_len)
        gold = golds[b] if seed % 3 or paper_protocol else None
        expected = reference_decode(spans, probs[lo:lo + n], unc[lo:lo + n], LABELS, threshold, gold, paper_protocol,
                                    words[b] if with_words else None)
        assert decoded[b] == expected
        assert [type(v) for r in decoded[b] for v in r.values()] == [type(v) for r in expected for v in r.values()]
        for rec, row in zip(decoded[b], rows[b]):  # each record's row holds its span and scores
            if row is None:
                assert rec.get("gold_informed") and rec["pred"] == "O"
                continue
            assert lo <= row < lo + n and spans[row - lo] == tuple(rec["span"])
            assert rec["confidence"] == float(probs[row].max())
        lo += n


def test_decode_sentence_is_one_batch_sentence():
    rng = np.random.default_rng(7)
    lengths, counts, probs, unc, words, golds = random_batch(rng, 1, 4)
    spans = enumerate_spans(lengths[0], 4)
    assert decode_sentence(spans, probs, unc, LABELS, 0.3, golds[0], words=words[0]) == \
        reference_decode(spans, probs, unc, LABELS, 0.3, golds[0], words=words[0])


def test_bad_spans_are_refused():
    probs, unc = torch.full((2, 4), 0.25), torch.zeros(2)
    with pytest.raises(ValueError, match="not an inclusive"):
        decode_batch(np.array([0, 2]), np.array([0, 1]), [2], probs, unc, LABELS, words=[["a", "b", "c"]])
    with pytest.raises(ValueError, match="not an inclusive"):
        decode_batch(np.array([0, 0]), np.array([0, 3]), [2], probs, unc, LABELS, words=[["a", "b", "c"]])
    with pytest.raises(ValueError, match="probs must be"):
        decode_batch(np.array([0]), np.array([0]), [1], probs, unc, LABELS)


@pytest.mark.parametrize("max_span_len", [1, 3, 8])
def test_span_arrays_enumerate_the_spans(max_span_len):
    lengths = [0, 1, 5, 2, 9, 0]
    starts, ends = span_arrays(lengths, max_span_len)
    assert list(zip(starts.tolist(), ends.tolist())) == [sp for n in lengths for sp in enumerate_spans(n, max_span_len)]
    assert [len(x) for x in span_arrays([], 3)] == [0, 0]


def test_batch_rescoring_matches_the_per_sentence_one():
    rescorer = Rescorer.__new__(Rescorer)
    rescorer.labels, rescorer.predictor, rescorer.temperature = LABELS, None, 1.37
    rng = np.random.default_rng(3)
    lengths, counts, probs, unc, words, golds = random_batch(rng, 12, 4)
    starts, ends = span_arrays(lengths, 4)
    decoded, rows = decode_batch(starts, ends, counts, probs, unc, LABELS, 0.2, golds, True, words)
    spans = [enumerate_spans(n, 4) for n in lengths]
    expected = [[dict(r) for r in sent] for sent in decoded]
    lo = 0
    for sent, sent_spans, n, w in zip(expected, spans, counts, words):
        rescorer.rescore(sent, sent_spans, probs[lo:lo + n], unc[lo:lo + n], w)
        lo += n
    rescorer.rescore_batch(decoded, rows, spans, probs, unc, words, [None] * len(decoded))
    assert decoded == expected
    assert any("calibrated_confidence" in r for sent in decoded for r in sent)
