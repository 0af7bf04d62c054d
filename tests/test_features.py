import pytest
import torch

from dataloaders.dataset import SpanDataset
from dataloaders.features import BertFeaturizer, GloveFeaturizer
from dataloaders.readers import Sentence
from dataloaders.spans import MORPHS, enumerate_spans, morph_id, width_bucket

LONG = ("Arnold Schwarzenegger told Reuters on Tuesday that the European Commission in Brussels "
        "would reject Germany 's proposal to boycott British lamb until 1996 , while officials "
        "from Paris and Lyon said Xylophonist Kowalczyk disagreed with Washington").split()


@pytest.fixture(scope="module")
def tokenizer(tiny_bert_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_bert_dir)


def pieces(tokenizer, word):
    return tokenizer(word, add_special_tokens=False)["input_ids"] or [tokenizer.unk_token_id]


def window_ranges(rows, word_pieces):
    """Recover each row's word range [lo, hi) by matching its body to consecutive words."""
    ranges = []
    for row in rows:
        body = row[1:-1]
        found = [(lo, hi) for lo in range(len(word_pieces)) for hi in range(lo + 1, len(word_pieces) + 1)
                 if sum(word_pieces[lo:hi], []) == body]
        assert len(found) == 1, f"row {row} is not one run of whole words"
        ranges.append(found[0])
    return ranges


def test_long_sentence_is_read_in_overlapping_windows(tokenizer):
    assert len(set(LONG)) == len(LONG), "the window matching below needs distinct words"
    feat = BertFeaturizer(tokenizer, max_length=16)
    out = feat.encode_all([LONG])[0]
    word_pieces = [pieces(tokenizer, w) for w in LONG]
    assert sum(map(len, word_pieces)) > 3 * 14, "the sentence must need several windows"
    assert feat.n_windowed == 1
    rows = out["rows"]
    assert all(r[0] == tokenizer.cls_token_id and r[-1] == tokenizer.sep_token_id and len(r) <= 16 for r in rows)
    ranges = window_ranges(rows, word_pieces)
    assert ranges[0][0] == 0 and ranges[-1][1] == len(LONG)
    for (lo1, hi1), (lo2, _) in zip(ranges, ranges[1:]):
        assert lo1 < lo2 <= hi1, "windows advance without gaps"
        assert lo2 < hi1 or hi1 - lo1 == 1, "windows overlap unless one word fills a window"
    assert out["n_sub"] == [len(p) for p in word_pieces]
    for w, p in enumerate(word_pieces):
        (r, first), (r_last, last) = out["first"][w], out["last"][w]
        assert r == r_last and rows[r][first:last + 1] == p, f"word {w} {LONG[w]!r}"
        # read from the window that gives it the most context on its closer side
        margins = [min(w - lo, hi - 1 - w) for lo, hi in ranges if lo <= w < hi]
        lo, hi = ranges[r]
        assert min(w - lo, hi - 1 - w) == max(margins)


def test_sentence_that_fits_gets_one_window(tokenizer):
    feat = BertFeaturizer(tokenizer, max_length=128)
    words = LONG[:6]
    out = feat.encode_all([words])[0]
    word_pieces = [pieces(tokenizer, w) for w in words]
    assert out["rows"] == [[tokenizer.cls_token_id] + sum(word_pieces, []) + [tokenizer.sep_token_id]]
    starts = [1]
    for p in word_pieces:
        starts.append(starts[-1] + len(p))
    assert out["first"] == [(0, s) for s in starts[:-1]]
    assert out["last"] == [(0, s - 1) for s in starts[1:]]
    assert feat.n_windowed == 0


def test_dropped_and_overlong_words_keep_a_position(tokenizer):
    feat = BertFeaturizer(tokenizer, max_length=8)
    words = ["EU", "\x07", "Qzxjqzxjqzxj"]  # a control character the tokenizer drops; a word of > 6 subwords
    assert len(pieces(tokenizer, words[2])) > 6
    out = feat.encode_all([words])[0]
    assert out["n_sub"] == [len(pieces(tokenizer, "EU")), 1, 6]
    (r, p) = out["first"][1]
    assert out["rows"][r][p] == tokenizer.unk_token_id
    assert all(len(row) <= 8 for row in out["rows"])


def test_collate_flat_indices_point_at_each_word(tokenizer):
    feat = BertFeaturizer(tokenizer, max_length=16)
    sentences = [LONG, LONG[:3]]
    batch = feat.collate(feat.encode_all(sentences))
    flat = batch["input_ids"].flatten()
    assert batch["word_first"].shape == (2, len(LONG))
    for i, words in enumerate(sentences):
        for w, word in enumerate(words):
            ids = pieces(tokenizer, word)
            assert flat[batch["word_first"][i, w]].item() == ids[0]
            assert flat[batch["word_last"][i, w]].item() == ids[-1]
    assert batch["attention_mask"].sum().item() == sum(len(r) for f in feat.encode_all(sentences) for r in f["rows"])


def test_bert_encoder_word_states_ignore_padding(tiny_bert_dir, tokenizer):
    from models.encoders import BertEncoder

    encoder = BertEncoder(tiny_bert_dir).eval()
    feat = BertFeaturizer(tokenizer)
    short = LONG[:4]
    with torch.no_grad():
        alone = encoder(feat.collate(feat.encode_all([short])))
        padded = encoder(feat.collate(feat.encode_all([short, LONG[:20]])))
    for a, b in zip(alone, padded):
        assert torch.allclose(a[0], b[0, :len(short)], atol=1e-5)


def test_featurizer_rejects_bad_settings(tokenizer):
    with pytest.raises(ValueError, match="bert_max_length 4 is too small"):
        BertFeaturizer(tokenizer, max_length=4)


# GloVe featurizer

def test_glove_word_ids():
    feat = GloveFeaturizer(["the", "paris", "0000", "0.00", "1996"], chars="EPae")
    ids = [feat.word_id(w) for w in ["The", "PARIS", "2024", "3.14", "1996", "Xylophonist", "x1"]]
    assert ids == [2, 3, 4, 5, 6, 1, 1]  # lower-cased, digits folded when unknown, 1 = unknown


def test_glove_char_ids_and_collate():
    feat = GloveFeaturizer.from_sentences([], [["Paris", "Lyon"]])
    assert feat.chars == sorted(set("ParisLyon"))
    enc = feat.encode_all([["Pa", "Z" * 40], ["i"]])
    index = {c: i + 2 for i, c in enumerate(feat.chars)}
    assert enc[0]["char_ids"][0] == [index["P"], index["a"]]
    assert enc[0]["char_ids"][1] == [1] * 30, "unknown characters are 1, words cut at 30 characters"
    assert enc[0]["n_sub"] == [1, 1]
    batch = feat.collate(enc)
    assert batch["word_ids"].tolist() == [[1, 1], [1, 0]]
    assert batch["char_ids"].shape == (2, 2, 30) and batch["char_ids"][1, 0].tolist() == [index["i"]] + [0] * 29


def test_glove_min_count():
    feat = GloveFeaturizer.from_sentences([], [["aab"]], min_count=2)
    assert feat.chars == ["a"]


# Span dataset

def test_span_dataset_features():
    words = ["EU", "rejects", "German", "call", "in", "1996", "."]
    sent = Sentence(words, [(0, 0, "ORG"), (2, 2, "MISC"), (5, 6, "DATE")])
    labels = ["O", "ORG", "MISC", "DATE"]
    ds = SpanDataset([sent], GloveFeaturizer.from_sentences([], [words]), labels, max_span_len=3)
    item = ds[0]
    spans = [(s, e) for s in range(7) for e in range(s, min(s + 3, 7))]
    assert [tuple(sp) for sp in item["spans"]] == spans
    gold = {(0, 0): 1, (2, 2): 2, (5, 6): 3}
    assert item["labels"] == [gold.get(sp, 0) for sp in spans]
    assert item["span_len"] == [e - s + 1 for s, e in spans]
    assert item["span_width"] == [e - s for s, e in spans]  # one position per GloVe word
    assert item["morph"] == [1, 2, 3, 2, 2, 4, 5]  # upper, lower, title, lower, lower, digit, other


def test_span_width_counts_subwords(tokenizer):
    words = ["Schwarzenegger", "told", "Reuters"]
    ds = SpanDataset([Sentence(words, [])], BertFeaturizer(tokenizer), ["O"], max_span_len=8)
    n = [len(pieces(tokenizer, w)) for w in words]
    assert n[0] > 5, "a word long enough to reach the log2 buckets"
    item = ds[0]
    for (s, e), width in zip(item["spans"], item["span_width"]):
        assert width == width_bucket(sum(n[s:e + 1]) - 1, 8)


def test_span_dataset_collate_pads():
    sents = [Sentence(["EU", "rejects"], [(0, 0, "ORG")]), Sentence(["Paris"], [(0, 0, "LOC")])]
    ds = SpanDataset(sents, GloveFeaturizer.from_sentences([], [s.words for s in sents]), ["O", "ORG", "LOC"], 5)
    batch = ds.collate([ds[0], ds[1]])
    assert batch["spans"].tolist() == [[[0, 0], [0, 1], [1, 1]], [[0, 0], [0, 0], [0, 0]]]
    assert batch["span_mask"].tolist() == [[True, True, True], [True, False, False]]
    assert batch["labels"].tolist() == [[1, 0, 0], [2, 0, 0]]
    assert batch["morph"].tolist() == [[1, 2], [3, 0]]
    assert batch["index"].tolist() == [0, 1]


def test_span_dataset_warns_about_entities_longer_than_max_span_len():
    sent = Sentence(["New", "York", "Stock", "Exchange"], [(0, 3, "ORG")])
    with pytest.warns(UserWarning, match="train.txt: 1 gold entities are longer than max_spanLen=3"):
        SpanDataset([sent], GloveFeaturizer([], "NYSE"), ["O", "ORG"], max_span_len=3, source="train.txt")


def test_span_helpers():
    assert enumerate_spans(3, 2) == [(0, 0), (0, 1), (1, 1), (1, 2), (2, 2)]
    assert [width_bucket(w, 8) for w in (0, 4, 5, 7, 8, 15, 16, 100)] == [0, 4, 5, 5, 6, 6, 7, 7]
    assert [width_bucket(w, 5) for w in (3, 4, 9)] == [3, 4, 4]
    assert [morph_id(w) for w in ("NATO", "lamb", "Paris", "1996", "McDonald", ",")] == [1, 2, 3, 4, 5, 5]
    assert len(MORPHS) == 5
