"""Turn words into encoder inputs: subword windows for BERT, word and character ids for GloVe.

A featurizer has `encode_all(list of word lists) -> list of dicts` (one per sentence, plain
Python lists) and `collate(list of dicts) -> dict of tensors`. Both report for every word
`n_sub`, its number of encoder positions, which the span-width feature needs.
"""

from __future__ import annotations

import itertools
import re
from typing import Iterable, Sequence

import numpy as np
import torch

from utils.errors import ConfigError


def pad(seqs: Sequence[Sequence], value: int = 0, dtype: torch.dtype = torch.long) -> torch.Tensor:
    """Right-pad a list of (possibly nested, 2-level) lists into a tensor."""
    if not seqs:
        return torch.tensor([], dtype=dtype)
    kind: type[np.generic] = np.float64 if dtype.is_floating_point else np.int64
    if seqs and seqs[0] and isinstance(seqs[0][0], (list, tuple)):
        rows = [x for s in seqs for x in s]  # the inner lists, sentence after sentence
        lengths = np.array([len(s) for s in seqs], dtype=np.int64)
        width = int(lengths.max(initial=0))
        inner = max((len(x) for x in rows), default=1)
        at = np.repeat(np.arange(len(seqs)) * width, lengths) + _positions(lengths)  # each row's place
        out = _filled(rows, (len(seqs) * width, inner), value, kind, at)
        return torch.as_tensor(out.reshape(len(seqs), width, inner), dtype=dtype)
    width = max((len(s) for s in seqs), default=0)
    return torch.as_tensor(_filled(seqs, (len(seqs), width), value, kind), dtype=dtype)


def _positions(sizes: np.ndarray) -> np.ndarray:
    """0, 1, ..., size - 1 for each of `sizes`, end to end."""
    return np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)


def _filled(rows: Sequence[Sequence], shape: tuple[int, int], value: int, kind: type[np.generic],
            at: np.ndarray | None = None) -> np.ndarray:
    """A `shape` array of `value` with each of `rows` written at the start of the array's row `at`
    (default: its own index)."""
    sizes = np.array([len(r) for r in rows], dtype=np.int64)
    out: np.ndarray = np.full(shape, value, dtype=kind)
    values: np.ndarray = np.fromiter(itertools.chain.from_iterable(rows), dtype=kind, count=int(sizes.sum()))
    out[np.repeat(np.arange(len(rows)) if at is None else at, sizes), _positions(sizes)] = values
    return out


class BertFeaturizer:
    """Subword ids from a fast tokenizer, split into overlapping windows of at most
    `max_length` positions when a sentence is too long, so no word is ever dropped."""


    def __init__(self, tokenizer, max_length=128):
        if not tokenizer.is_fast:
            raise ConfigError("a fast tokenizer is needed to map words to subwords")
        if max_length < 8:
            raise ConfigError(f"bert_max_length {max_length} is too small")
        self.tok, self.max_length = tokenizer, max_length
        self.n_windowed = 0  # sentences that needed more than one window

    def encode_all(self, sentences: list[list[str]]) -> list[dict]:
        enc = self.tok(sentences, is_split_into_words=True, add_special_tokens=False)
        return [self._encode(words, enc["input_ids"][i], enc.word_ids(i)) for i, words in enumerate(sentences)]

    def _encode(self, words, ids, word_ids):
        budget = self.max_length - 2
        pieces = [[] for _ in words]
        for tid, wid in zip(ids, word_ids):
            pieces[wid].append(tid)
        # A word the tokenizer drops (stray control characters) still needs a position.
        pieces = [(p or [self.tok.unk_token_id])[:budget] for p in pieces]
        windows = self._windows([len(p) for p in pieces], budget)
        self.n_windowed += len(windows) > 1
        # Each word is read from the window where it sits furthest from an edge.
        owner, margin = [0] * len(words), [-1] * len(words)
        for r, (lo, hi) in enumerate(windows):
            for w in range(lo, hi):
                if min(w - lo, hi - 1 - w) > margin[w]:
                    owner[w], margin[w] = r, min(w - lo, hi - 1 - w)
        rows, first, last = [], [None] * len(words), [None] * len(words)
        for r, (lo, hi) in enumerate(windows):
            row = [self.tok.cls_token_id]
            for w in range(lo, hi):
                if owner[w] == r:
                    first[w], last[w] = (r, len(row)), (r, len(row) + len(pieces[w]) - 1)
                row.extend(pieces[w])
            rows.append(row + [self.tok.sep_token_id])
        return {"rows": rows, "first": first, "last": last, "n_sub": [len(p) for p in pieces]}

    @staticmethod
    def _windows(lengths, budget):
        """Word ranges [lo, hi) of at most `budget` subwords; each next window starts with the
        previous one's last word and up to half a budget of the words before it, as context."""
        windows, lo = [], 0
        while True:
            hi, used = lo, 0
            while hi < len(lengths) and used + lengths[hi] <= budget:
                used += lengths[hi]
                hi += 1
            windows.append((lo, hi))
            if hi == len(lengths):
                return windows
            lo, used = hi, lengths[hi]
            while lo - 1 > windows[-1][0] and used + lengths[lo - 1] <= (budget if lo == hi else budget // 2):
                lo -= 1
                used += lengths[lo]

    def collate(self, feats: list[dict]) -> dict[str, torch.Tensor]:
        rows = [row for f in feats for row in f["rows"]]
        input_ids = pad(rows, self.tok.pad_token_id or 0)
        offsets = np.cumsum([0] + [len(f["rows"]) for f in feats])
        width = input_ids.shape[1]

        def flat(key: str) -> torch.Tensor:
            return pad([[(offsets[i] + r) * width + p for r, p in f[key]] for i, f in enumerate(feats)])

        return {"input_ids": input_ids, "attention_mask": (pad(rows, -1) != -1).long(),
                "word_first": flat("first"), "word_last": flat("last")}


_DIGITS = re.compile(r"\d")
WORD_CACHE = 1 << 17  # distinct words whose GloVe features a featurizer keeps


class GloveFeaturizer:
    """Lower-cased GloVe word ids (digits folded to 0 when the number is unknown) and
    character ids from the training data; index 0 pads, index 1 is unknown. With
    `noisy_words` (opt-in, for tweets) an unknown `#tag` or `@name` is looked up without its mark."""


    def __init__(self, glove_words, chars, noisy_words: bool = False):
        self.word_index = {w: i + 2 for i, w in enumerate(glove_words)}
        self.chars = list(chars)
        self.char_index = {c: i + 2 for i, c in enumerate(self.chars)}
        self.noisy_words = noisy_words
        self._seen: dict[str, tuple[int, tuple[int, ...]]] = {}  # `_word`'s answers

    @classmethod
    def from_sentences(cls, glove_words: Iterable[str], sentences: list[list[str]],
                       min_count: int = 1) -> GloveFeaturizer:
        counts: dict[str, int] = {}
        for words in sentences:
            for c in "".join(words):
                counts[c] = counts.get(c, 0) + 1
        return cls(glove_words, sorted(c for c, n in counts.items() if n >= min_count))

    def word_id(self, word: str) -> int:
        w = word.lower()
        found = self.word_index.get(w) or self.word_index.get(_DIGITS.sub("0", w))
        if not found and self.noisy_words and len(w) > 1 and w[0] in "#@":
            return self.word_id(w[1:])
        return found or 1

    def encode_all(self, sentences: list[list[str]]) -> list[dict]:
        out = []
        for words in sentences:
            ids = [self._word(w) for w in words]
            out.append({"word_ids": [i for i, _ in ids], "char_ids": [list(c) for _, c in ids],
                        "n_sub": [1] * len(words)})
        return out

    def _word(self, word: str) -> tuple[int, tuple[int, ...]]:
        """A word's id and character ids, each word worked out once (up to `WORD_CACHE` words kept)."""
        found = self._seen.get(word)
        if found is None:
            if len(self._seen) >= WORD_CACHE:
                self._seen.clear()
            found = self._seen[word] = (self.word_id(word), tuple(self.char_index.get(c, 1) for c in word[:30]))
        return found

    def collate(self, feats: list[dict]) -> dict[str, torch.Tensor]:
        return {"word_ids": pad([f["word_ids"] for f in feats]), "char_ids": pad([f["char_ids"] for f in feats])}


class ContextGloveFeaturizer:
    """`--context_encoder`: GloVe's inputs plus a frozen encoder's subword windows (as
    `BertFeaturizer` makes them) in one batch; words count one position each, as for GloVe."""

    def __init__(self, glove: GloveFeaturizer, context: BertFeaturizer):
        self.glove, self.context = glove, context

    @property
    def n_windowed(self) -> int:
        return self.context.n_windowed

    def word_id(self, word: str) -> int:
        """The GloVe id (what "known to the encoder" means for this model)."""
        return self.glove.word_id(word)

    def encode_all(self, sentences: list) -> list:
        return [{**c, **g} for g, c in zip(self.glove.encode_all(sentences), self.context.encode_all(sentences))]

    def collate(self, feats: list) -> dict:
        return {**self.glove.collate(feats), **self.context.collate(feats)}
