"""Turn a sentence's scored spans into a flat entity set plus candidates for the LLM (one
sentence, or a batch's sentences end to end in a few array operations: `decode_batch`).

Entities: spans whose best label is not "O"; overlaps are resolved greedily, most confident
first (the paper's rule). Candidates: spans the model tagged "O" but is unsure of
(uncertainty > threshold) that overlap no kept entity, ranked by their best non-O probability
so the spans most likely to hide an entity win among overlapping candidates. Ties in either
ranking go to the earlier, then shorter, span.

Selection never reads gold labels: gold only adds each span's "answer" afterwards, and, with
`paper_protocol=True`, the gold spans themselves (see `_gold_informed`).
"""

from __future__ import annotations

import itertools
from typing import Iterable, Optional, Sequence, Union

import numpy as np
import torch

from utils.errors import ConfigError


def _as_numpy(x: Union[np.ndarray, torch.Tensor]) -> np.ndarray:
    if torch.is_tensor(x):
        return x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _check_inputs(starts, ends, counts, probs, uncertainty, labels, n_words):
    if not labels or labels[0] != "O":
        raise ValueError(f"labels must start with 'O', got {list(labels)[:3]}")
    n = len(starts)
    if probs.ndim != 2 or probs.shape != (n, len(labels)):
        raise ValueError(f"probs must be [n_spans={n}, n_labels={len(labels)}], got {probs.shape}")
    if uncertainty.shape != (n,):
        raise ValueError(f"uncertainty must be [n_spans={n}], got {uncertainty.shape}")
    if len(ends) != n or sum(counts) != n or len(n_words) != len(counts):
        raise ValueError(f"{n} starts, {len(ends)} ends and {sum(counts)} counted spans in {len(counts)} sentences")
    limit = np.repeat(np.asarray(n_words, dtype=np.int64), counts)
    bad = np.flatnonzero(~((starts >= 0) & (starts <= ends) & (ends < limit)))
    if bad.size:
        i = bad[0]
        raise ValueError(f"span ({starts[i]}, {ends[i]}) is not an inclusive (start, end) pair within {limit[i]} words")


def _greedy(idx, score, sentence, starts, ends, taken, kept, candidate):
    """Keep the spans of `idx` sentence by sentence in order of `score` (aligned with `idx`,
    high first), skipping any that touch their sentence's `taken` words.

    `taken` holds a per-word occupancy list per sentence, updated in place; each kept row goes
    to its sentence's list in `kept`, as (row, `candidate`).
    """
    order = idx[np.lexsort((ends[idx], starts[idx], -score, sentence[idx]))]  # last key sorts first
    for i, b, s, e in zip(order.tolist(), sentence[order].tolist(), starts[order].tolist(), ends[order].tolist()):
        words = taken[b]
        if not any(words[s:e + 1]):
            words[s:e + 1] = [True] * (e - s + 1)
            kept[b].append((i, candidate))


def _record(span, pred, confidence, uncertainty, candidate, words):
    s, e = span
    rec = {"entity": " ".join(words[s:e + 1])} if words is not None else {}
    rec.update(span=[int(s), int(e)], pred=pred, confidence=float(confidence),
               uncertainty=float(uncertainty), candidate=candidate)
    return rec


def _gold_informed(gold, records, spans, scored, words):
    """The released code's behaviour: every gold span not yet listed, scored by the model.

    This leaks gold labels into the LLM stage; records are marked `gold_informed` and, like
    candidates, are never counted as local predictions. A gold span that was not enumerated
    (e.g. longer than the maximum span length) gets pred "O", confidence 0, uncertainty 1.
    Returns the records and each one's index in `spans` (None where not enumerated).
    """
    listed = {tuple(r["span"]) for r in records}
    index = {(int(s), int(e)): i for i, (s, e) in enumerate(spans)}
    out, rows = [], []
    for s, e, _ in gold:
        if (s, e) in listed:
            continue
        i = index.get((s, e))
        rec = scored(i, True) if i is not None else _record((s, e), "O", 0.0, 1.0, True, words)
        rec["gold_informed"] = True
        out.append(rec)
        rows.append(i)
    return out, rows


def decode_sentence(spans: Sequence[tuple[int, int]], probs: Union[np.ndarray, torch.Tensor],
                    uncertainty: Union[np.ndarray, torch.Tensor], labels: Sequence[str],
                    candidate_threshold: Optional[float] = None, gold: Optional[Iterable[tuple[int, int, str]]] = None,
                    paper_protocol: bool = False, words: Optional[Sequence[str]] = None) -> list[dict]:
    """Entities and candidates of one sentence as output dicts, sorted by span.

    `spans`: every enumerated (start, end), word indices inclusive; `probs` [n, K] and
    `uncertainty` [n] from `span_probabilities`; `labels` with "O" first. With `gold`
    [(start, end, label)], each dict gets the "answer" (gold label of exactly that span, "O"
    if none). `paper_protocol=True` also lists the gold spans (gold-informed, see above).
    """
    bounds = np.array([(s, e) for s, e in spans], dtype=np.int64).reshape(-1, 2)
    records, _ = decode_batch(bounds[:, 0], bounds[:, 1], [len(bounds)], probs, uncertainty, labels,
                              candidate_threshold, None if gold is None else [gold], paper_protocol,
                              None if words is None else [words])
    return records[0]


def decode_batch(starts: np.ndarray, ends: np.ndarray, counts: Sequence[int], probs: Union[np.ndarray, torch.Tensor],
                 uncertainty: Union[np.ndarray, torch.Tensor], labels: Sequence[str],
                 candidate_threshold: Optional[float] = None,
                 golds: Optional[Sequence[Optional[Iterable[tuple[int, int, str]]]]] = None,
                 paper_protocol: bool = False,
                 words: Optional[Sequence[Sequence[str]]] = None) -> tuple[list[list[dict]], list[list[Optional[int]]]]:
    """`decode_sentence` for many sentences at once, their spans end to end: `counts` spans per
    sentence, each (`starts`, `ends`) [N], with `probs` [N, K] and `uncertainty` [N]; `golds` and
    `words` per sentence. Returns per sentence its dicts and, aligned with them, each one's row
    in `probs` (None for a gold span that was not enumerated)."""
    if paper_protocol and (golds is None or any(g is None for g in golds)):
        raise ConfigError("paper_protocol lists the gold spans, so it needs gold labels")
    probs, uncertainty = _as_numpy(probs), _as_numpy(uncertainty)
    starts, ends, counts = np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64), list(counts)
    bounds = np.cumsum([0] + counts)
    n_words = ([len(w) for w in words] if words is not None else
               [int(ends[lo:hi].max()) + 1 if hi > lo else 0 for lo, hi in zip(bounds[:-1], bounds[1:])])
    _check_inputs(starts, ends, counts, probs, uncertainty, labels, n_words)
    sentence = np.repeat(np.arange(len(counts)), counts)
    best, top = probs.argmax(1), probs.max(1)
    taken = [[False] * n for n in n_words]
    kept: list[list[tuple[int, bool]]] = [[] for _ in counts]
    named = np.flatnonzero(best != 0)
    _greedy(named, top[named], sentence, starts, ends, taken, kept, False)
    if candidate_threshold is not None:
        unsure = np.flatnonzero((best == 0) & (uncertainty > candidate_threshold))
        _greedy(unsure, probs[unsure, 1:].max(1), sentence, starts, ends, taken, kept, True)
    rows = [i for sent in kept for i, _ in sent]
    fields = zip(starts[rows].tolist(), ends[rows].tolist(), best[rows].tolist(), top[rows].tolist(),
                 uncertainty[rows].tolist())
    out, out_rows = [], []
    for b, sent in enumerate(kept):
        sent_words = words[b] if words is not None else None
        records = [_record((s, e), labels[k], p, u, candidate, sent_words)
                   for (_, candidate), (s, e, k, p, u) in zip(sent, itertools.islice(fields, len(sent)))]
        sent_rows: list[Optional[int]] = [i for i, _ in sent]
        gold = golds[b] if golds is not None else None
        if gold is not None:
            gold = [(int(s), int(e), label) for s, e, label in gold]
            if paper_protocol:
                lo, hi = int(bounds[b]), int(bounds[b + 1])
                spans = list(zip(starts[lo:hi].tolist(), ends[lo:hi].tolist()))

                def scored(i: int, candidate: bool, lo: int = lo) -> dict:
                    return _record(spans[i], labels[best[lo + i]], top[lo + i], uncertainty[lo + i], candidate,
                                   sent_words)

                informed, informed_rows = _gold_informed(gold, records, spans, scored, sent_words)
                records += informed
                sent_rows += [None if i is None else lo + i for i in informed_rows]
            answer = {(s, e): label for s, e, label in gold}
            for rec in records:
                rec["answer"] = answer.get(tuple(rec["span"]), "O")
        order = sorted(range(len(records)), key=lambda j: records[j]["span"])
        out.append([records[j] for j in order])
        out_rows.append([sent_rows[j] for j in order])
    return out, out_rows
