"""What the learned error predictor reads about each listed span (entity or candidate):
signals of the span's own label distribution and signals the softmax cannot see.

    uncertainty, p_pred, p_o, p_entity   the model's uncertainty, the probability of its
                                         label, of "O", and of the best entity type
    margin, entropy                      top-two gap and entropy / log K of the distribution
    candidate                            1 for a span tagged O but listed for the LLM
    length, at_start                     words in the span; whether it starts the sentence
    unknown_encoder, unknown_train       share of the span's words the encoder has no entry
                                         for (GloVe: not in its vocabulary; BERT: split into
                                         several subwords or unknown) / not seen in training
    capitalised, upper, lower, digits    share of words capitalised / all upper case / all
                                         lower case; whether any word has a digit
    competitor, competitor_p             whether overlap resolution dropped an entity span
                                         overlapping this one, and that span's probability
    seen_entity, seen_label              whether the span's exact text is a gold entity in the
                                         training split, and the share of those with label pred
    word_entity, word_label              mean over the span's words of the share of their
                                         training occurrences inside an entity / one labelled pred
    before_cap, after_cap                whether the word before / after the span is capitalised
                                         (a boundary the model may have cut short)
    sentence_upper, sentence_length      share of the sentence's words in upper case (headlines),
                                         log of its number of words
    log_uncertainty, logit_p_pred        the same signals on a log scale, for a linear model
    label=X                              one flag per label of the model (X = pred)

`probs` and `uncertainty` are those the spans were decoded with (the checkpoint's default
uncertainty type), so the features never depend on gold labels.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from dataloaders.readers import Sentence
    from models.checkpoint import Featurizer

BASE = ("uncertainty", "p_pred", "p_o", "p_entity", "margin", "entropy", "candidate", "length", "at_start",
        "unknown_encoder", "unknown_train", "capitalised", "upper", "lower", "digits", "competitor",
        "competitor_p", "seen_entity", "seen_label", "word_entity", "word_label", "before_cap", "after_cap",
        "sentence_upper", "sentence_length", "log_uncertainty", "logit_p_pred")


def feature_names(labels: Sequence[str]) -> list[str]:
    return list(BASE) + [f"label={label}" for label in labels]


def encoder_lookup(featurizer: Featurizer) -> Callable[[str], bool]:
    """`known(word) -> bool`: whether the encoder has its own entry for the word."""
    if hasattr(featurizer, "word_id"):  # GloVe: 1 is the unknown id
        return lambda word: featurizer.word_id(word) != 1
    tok = featurizer.tok
    unk = tok.unk_token_id
    cache = {}

    def known(word: str) -> bool:
        if word not in cache:
            ids = tok(word, add_special_tokens=False)["input_ids"]
            cache[word] = len(ids) == 1 and ids[0] != unk
        return cache[word]

    return known


def train_lexicon(sentences: Iterable[Sentence]) -> tuple[set[str], dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    """What the training split says, for `WordFlags`: (lower-cased words, {entity text: {label:
    count}}, {word inside some entity: {label: count, "O": count outside entities}})."""
    vocab: set[str] = set()
    entities: dict[str, dict[str, int]] = {}
    words: dict[str, dict[str, int]] = {}
    for sent in sentences:
        vocab.update(w.lower() for w in sent.words)
        tags = ["O"] * len(sent.words)
        for s, e, label in sent.entities or []:
            counts = entities.setdefault(" ".join(sent.words[s:e + 1]), {})
            counts[label] = counts.get(label, 0) + 1
            tags[s:e + 1] = [label] * (e - s + 1)
        for word, tag in zip(sent.words, tags):
            counts = words.setdefault(word, {})
            counts[tag] = counts.get(tag, 0) + 1
    # only words seen inside some entity are kept; their O count is every outside occurrence,
    # wherever in the split it falls
    return vocab, entities, {w: c for w, c in words.items() if set(c) != {"O"}}


class WordFlags:
    """Per-word flags, cached over a run: known to the encoder, seen in training; and what the
    training split says of an entity text."""

    def __init__(self, known_to_encoder, train_vocab, train_entities=None, train_words=None):
        self.known_to_encoder, self.train_vocab, self.cache = known_to_encoder, train_vocab, {}
        self.train_entities, self.train_words = train_entities or {}, train_words or {}

    def word_labels(self, words: Sequence[str], label: str) -> tuple[float, float]:
        """Mean over `words` of the share of their training occurrences inside an entity, and
        inside one labelled `label`."""
        inside = labelled = 0.0
        for word in words:
            counts = self.train_words.get(word)
            if counts:
                total = sum(counts.values())
                inside += 1 - counts.get("O", 0) / total
                labelled += counts.get(label, 0) / total if label != "O" else 0.0
        return inside / len(words), labelled / len(words)

    def entity(self, text: str, label: str) -> tuple[float, float]:
        """(seen as a training entity, share of those occurrences labelled `label`)."""
        counts = self.train_entities.get(text)
        if not counts:
            return 0.0, 0.0
        return 1.0, counts.get(label, 0) / sum(counts.values())

    def __call__(self, word):
        flags = self.cache.get(word)
        if flags is None:
            flags = self.cache[word] = (
                not self.known_to_encoder(word), word.lower() not in self.train_vocab,
                word[:1].isupper(), word.isupper() and len(word) > 1, word.islower(),
                any(c.isdigit() for c in word))
        return flags


def sentence_features(records: list[dict], spans: Sequence[tuple[int, int]], probs: ArrayLike, uncertainty: ArrayLike,
                      labels: Sequence[str], words: Sequence[str], word_flags: WordFlags) -> np.ndarray:
    """[len(records), n_features] for the listed `records` of one decoded sentence."""
    probs = np.asarray(probs, dtype=np.float64)
    uncertainty = np.asarray(uncertainty, dtype=np.float64)
    n_labels = len(labels)
    index = {(int(s), int(e)): i for i, (s, e) in enumerate(spans)}
    starts = np.array([s for s, _ in spans])
    ends = np.array([e for _, e in spans])
    best = probs.argmax(1)
    kept = {tuple(r["span"]) for r in records if not r.get("candidate")}
    dropped = np.array([best[i] != 0 and (int(starts[i]), int(ends[i])) not in kept for i in range(len(spans))],
                       dtype=bool)
    label_index = {label: k for k, label in enumerate(labels)}
    sentence = (float(np.mean([word_flags(w)[3] for w in words])), math.log(len(words)))
    capitalised = [word_flags(w)[2] for w in words] + [False]
    rows = np.zeros((len(records), len(BASE) + n_labels))
    for row, rec in zip(rows, records):
        s, e = rec["span"]
        i = index.get((s, e))
        if i is None:  # a gold-informed span longer than the model enumerates
            p, unc = np.full(n_labels, 1.0 / n_labels), 1.0
        else:
            p, unc = probs[i], uncertainty[i]
        top2 = np.sort(p)[-2:]
        pred = label_index.get(rec["pred"], 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            entropy = float(-(p * np.log(np.where(p > 0, p, 1))).sum() / math.log(n_labels))
        over = dropped & (starts <= e) & (ends >= s)
        flags = np.array([word_flags(w) for w in words[s:e + 1]], dtype=np.float64)
        row[:len(BASE)] = (
            unc, p[pred], p[0], p[1:].max(), top2[1] - top2[0], entropy, float(bool(rec.get("candidate"))),
            e - s + 1, float(s == 0), *flags[:, :5].mean(0), flags[:, 5].max(),
            float(over.any()), probs[over].max(1).max() if over.any() else 0.0,
            *word_flags.entity(" ".join(words[s:e + 1]), rec["pred"]),
            *word_flags.word_labels(words[s:e + 1], rec["pred"]), float(s > 0 and capitalised[s - 1]),
            float(capitalised[e + 1]), *sentence, math.log(unc + 1e-6), math.log((p[pred] + 1e-6) / (1 - p[pred] + 1e-6)))
        row[len(BASE) + pred] = 1.0
    return rows
