"""Turn one sentence's scored spans into a flat entity set plus candidates for the LLM.

Entities: spans whose best label is not "O"; overlaps are resolved greedily, most confident
first (the paper's rule). Candidates: spans the model tagged "O" but is unsure of
(uncertainty > threshold) that overlap no kept entity, ranked by their best non-O probability
so the spans most likely to hide an entity win among overlapping candidates. Ties in either
ranking go to the earlier, then shorter, span.

Selection never reads gold labels: gold only adds each span's "answer" afterwards, and, with
`paper_protocol=True`, the gold spans themselves (see `_gold_informed`).
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence, Union

import numpy as np
import torch

from utils.errors import ConfigError


def _as_numpy(x: Union[np.ndarray, torch.Tensor]) -> np.ndarray:
    if torch.is_tensor(x):
        return x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _check_inputs(spans, probs, uncertainty, labels, n_words):
    if not labels or labels[0] != "O":
        raise ValueError(f"labels must start with 'O', got {list(labels)[:3]}")
    if probs.ndim != 2 or probs.shape != (len(spans), len(labels)):
        raise ValueError(f"probs must be [n_spans={len(spans)}, n_labels={len(labels)}], got {probs.shape}")
    if uncertainty.shape != (len(spans),):
        raise ValueError(f"uncertainty must be [n_spans={len(spans)}], got {uncertainty.shape}")
    for s, e in spans:
        if not 0 <= s <= e < n_words:
            raise ValueError(f"span ({s}, {e}) is not an inclusive (start, end) pair within {n_words} words")


def _greedy(spans, idx, score, taken):
    """Keep spans of `idx` in order of `score` (high first), skipping any that touch `taken`.

    `taken` is a per-word occupancy list, updated in place. Returns the kept indices.
    """
    starts = np.array([spans[i][0] for i in idx])
    ends = np.array([spans[i][1] for i in idx])
    kept = []
    for j in np.lexsort((ends, starts, -score[idx])):  # last key sorts first
        s, e = spans[idx[j]]
        if not any(taken[s:e + 1]):
            taken[s:e + 1] = [True] * (e - s + 1)
            kept.append(int(idx[j]))
    return kept


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
    """
    listed = {tuple(r["span"]) for r in records}
    index = {(int(s), int(e)): i for i, (s, e) in enumerate(spans)}
    out = []
    for s, e, _ in gold:
        if (s, e) in listed:
            continue
        i = index.get((s, e))
        rec = scored(i, True) if i is not None else _record((s, e), "O", 0.0, 1.0, True, words)
        rec["gold_informed"] = True
        out.append(rec)
    return out


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
    if paper_protocol and gold is None:
        raise ConfigError("paper_protocol lists the gold spans, so it needs gold labels")
    probs, uncertainty = _as_numpy(probs), _as_numpy(uncertainty)
    n_words = len(words) if words is not None else max((e + 1 for _, e in spans), default=0)
    _check_inputs(spans, probs, uncertainty, labels, n_words)
    best, top = probs.argmax(1), probs.max(1)

    def scored(i: int, candidate: bool) -> dict:
        return _record(spans[i], labels[best[i]], top[i], uncertainty[i], candidate, words)

    taken = [False] * n_words
    records = [scored(i, False) for i in _greedy(spans, np.flatnonzero(best != 0), top, taken)]
    if candidate_threshold is not None:
        unsure = np.flatnonzero((best == 0) & (uncertainty > candidate_threshold))
        records += [scored(i, True) for i in _greedy(spans, unsure, probs[:, 1:].max(1), taken)]
    if gold is not None:
        gold = [(int(s), int(e), label) for s, e, label in gold]
        if paper_protocol:
            records += _gold_informed(gold, records, spans, scored, words)
        answer = {(s, e): label for s, e, label in gold}
        for rec in records:
            rec["answer"] = answer.get(tuple(rec["span"]), "O")
    return sorted(records, key=lambda r: r["span"])
