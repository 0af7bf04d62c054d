import random

import pytest

from dataloaders.readers import read_dataset
from dataloaders.text import tokenize


def check_spans(line):
    words, spans = tokenize(line)
    assert len(words) == len(spans)
    assert [line[s:e] for s, e in spans] == words
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), "spans overlap or go backwards"
    assert "".join(words) == "".join(line.split()), "a non-space character was lost"
    return words


@pytest.mark.parametrize("line, expected", [
    ("Paris, London.", ["Paris", ",", "London", "."]),
    ("(EU) rejects \"German\" call!", ["(", "EU", ")", "rejects", '"', "German", '"', "call", "!"]),
    ("the U.S. and e.g. U.K.", ["the", "U.S.", "and", "e.g.", "U.K."]),
    ("on 1996-08-22 at 10:30", ["on", "1996-08-22", "at", "10:30"]),
    ("3.5% of 1,000 e-mail users", ["3.5", "%", "of", "1,000", "e-mail", "users"]),
    ("O'Neil's team", ["O'Neil", "'s", "team"]),
    ("don't, CAN'T; we're", ["do", "n't", ",", "CA", "N'T", ";", "we", "'re"]),
    ("Germany’s coach", ["Germany", "’s", "coach"]),
    ("Jones' dog", ["Jones", "'", "dog"]),
    ("-edge- .dot", ["-", "edge", "-", ".", "dot"]),
    ("@user loves #NER", ["@user", "loves", "#NER"]),
])
def test_rules(line, expected):
    assert check_spans(line) == expected


def test_whitespace_of_any_kind_only_separates():
    line = "  EU \t rejects\u00a0German   call \u3000. "
    assert check_spans(line) == ["EU", "rejects", "German", "call", "."]
    assert tokenize(line)[1][0] == (2, 4)


def test_non_ascii_words():
    assert check_spans("São Paulo, Zürich and Ærø.") == ["São", "Paulo", ",", "Zürich", "and", "Ærø", "."]
    # a decomposed é (e + combining acute) and a Devanagari vowel sign stay inside their words
    assert check_spans("cafe\u0301 नमस्ते") == ["cafe\u0301", "नमस्ते"]
    assert check_spans("I \u2764\ufe0f Oslo") == ["I", "\u2764\ufe0f", "Oslo"]


def test_empty_and_blank_lines():
    assert tokenize("") == ([], [])
    assert tokenize(" \t ") == ([], [])


def test_random_strings_slice_back():
    rng = random.Random(13)
    alphabet = "aZ09 .,;:'’-/@#$%()\"\t\u00a0\u3000ÆøüßéΩж中😀\u0301\u093f\x1c"
    for _ in range(2000):
        check_spans("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))))


def test_read_plain_text_uses_tokenizer(tmp_path):
    path = tmp_path / "raw.txt"
    path.write_text("EU rejects German call.\n\n  Zürich, 1996-08-22\n", encoding="utf-8")
    sentences = read_dataset(str(path), fmt="text")
    assert [s.words for s in sentences] == [["EU", "rejects", "German", "call", "."], ["Zürich", ",", "1996-08-22"]]
    for s in sentences:
        assert [s.text[a:b] for a, b in s.char_spans] == s.words
