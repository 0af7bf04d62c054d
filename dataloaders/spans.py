"""Span enumeration and the per-span features of SpanNER (length, width bucket, morphology)."""

from __future__ import annotations

import functools
import math
from typing import Sequence

import numpy as np

# SpanNER's morphology categories, one per word, summed over a span by the model.
MORPHS = ("isupper", "islower", "istitle", "isdigit", "other")


def enumerate_spans(n_words: int, max_span_len: int) -> list[tuple[int, int]]:
    """All (start, end) word spans, end inclusive, of at most `max_span_len` words."""
    return list(_spans(n_words, max_span_len))


@functools.lru_cache(maxsize=1024)
def _spans(n_words: int, max_span_len: int) -> tuple[tuple[int, int], ...]:
    return tuple((s, e) for s in range(n_words) for e in range(s, min(s + max_span_len, n_words)))


def span_arrays(lengths: Sequence[int], max_span_len: int) -> tuple[np.ndarray, np.ndarray]:
    """The (starts, ends) of `enumerate_spans` for sentences of `lengths` words, end to end, as
    two integer arrays."""
    counts = np.asarray(lengths, dtype=np.int64)
    end = np.arange(int(counts.max(initial=0)))[:, None] + np.arange(max_span_len)  # [W, L]: s + k
    _, start, offset = np.nonzero(end < counts[:, None, None])  # row-major: sentence, start, end
    return start, start + offset


@functools.lru_cache(maxsize=1 << 16)
def morph_id(word: str) -> int:
    """1-based index into MORPHS (0 is padding)."""
    for i, test in enumerate(MORPHS[:-1]):
        if getattr(word, test)():
            return i + 1
    return len(MORPHS)


def width_bucket(width: int, n_buckets: int) -> int:
    """AllenNLP's `bucket_values` as used by SpanNER's endpoint extractor:
    widths 0-4 keep their own bucket, larger ones go to log2 buckets, clipped."""
    if width <= 4:
        return min(width, n_buckets - 1)
    return min(int(math.log2(width)) + 3, n_buckets - 1)
