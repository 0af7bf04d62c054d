import json

import pytest

from dataloaders.readers import Sentence, load_labels, read_dataset, split_path
from utils.errors import DataError


def write(tmp_path, name, text):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return str(path)


def spanner(tmp_path, records, name="spanner.train"):
    return write(tmp_path, name, json.dumps(records))


def column(tmp_path, rows, name="train.txt"):
    """`rows`: sentences as lists of line strings; a blank line between sentences."""
    return write(tmp_path, name, "\n".join("".join(line + "\n" for line in sent) for sent in rows))


def read(path, **kw):
    return [(s.words, s.entities) for s in read_dataset(path, **kw)]


# Spanner JSON

def test_spanner_json(tmp_path):
    path = spanner(tmp_path, [
        {"context": "-DOCSTART-", "span_posLabel": {}},
        {"context": "EU rejects German call", "span_posLabel": {"2;2": "MISC", "0;0": "ORG"}},
        {"context": "Peter Blackburn", "span_posLabel": {"0;1": "PER"}},
        {"context": "no entities here"}])
    assert read(path) == [(["EU", "rejects", "German", "call"], [(0, 0, "ORG"), (2, 2, "MISC")]),
                          (["Peter", "Blackburn"], [(0, 1, "PER")]),
                          (["no", "entities", "here"], [])]


def test_spanner_json_empty_context_is_skipped_with_a_warning(tmp_path):
    path = spanner(tmp_path, [{"context": "  ", "span_posLabel": {}}, {"context": "a b", "span_posLabel": {}}])
    with pytest.warns(UserWarning, match="skipped 1 records with an empty context"):
        assert read(path) == [(["a", "b"], [])]


def test_spanner_json_detected_by_content(tmp_path):
    path = write(tmp_path, "data.txt", json.dumps([{"context": "Paris", "span_posLabel": {"0;0": "LOC"}}]))
    assert read(path) == [(["Paris"], [(0, 0, "LOC")])]


# CoNLL column files

@pytest.mark.parametrize("tags", [
    ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "O", "B-ORG"],  # BIO
    ["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "O", "I-ORG"],  # IOB1: B- only between same-type neighbours
    ["B-PER", "E-PER", "O", "S-LOC", "S-LOC", "O", "S-ORG"],  # IOBES
    ["B-PER", "L-PER", "O", "U-LOC", "U-LOC", "O", "U-ORG"],  # BILOU
], ids=["BIO", "IOB1", "IOBES", "BILOU"])
def test_column_tag_schemes(tmp_path, tags):
    words = ["Peter", "Blackburn", "in", "Paris", "Lyon", "for", "EU"]
    path = column(tmp_path, [[f"{w} {t}" for w, t in zip(words, tags)]])
    assert read(path) == [(words, [(0, 1, "PER"), (3, 3, "LOC"), (4, 4, "LOC"), (6, 6, "ORG")])]


def test_four_column_file_docstart_and_empty_sentences(tmp_path):
    text = ("-DOCSTART- -X- -X- O\n\n\n"
            "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\n\n\n\n"
            "-DOCSTART- -X- -X- O\n\n"
            "Peter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n")
    path = write(tmp_path, "train.txt", text)
    assert read(path) == [(["EU", "rejects", "German"], [(0, 0, "ORG"), (2, 2, "MISC")]),
                          (["Peter", "Blackburn"], [(0, 1, "PER")])]
    # column 2 holds the chunk tags: reading it gives NP/VP "entities"
    assert read(path, column=2)[0] == (["EU", "rejects", "German"], [(0, 0, "NP"), (1, 1, "VP"), (2, 2, "NP")])


def test_tab_separated_columns_and_no_break_space_word(tmp_path):
    # A tweet token that is a lone U+00A0: columns are split on spaces and tabs only.
    path = column(tmp_path, [["RT\tO", "\u00a0\tO", "@Paris\tB-LOC"], ["\u00a0 O", "Lyon B-LOC"]])
    expected = [(["RT", "\u00a0", "@Paris"], [(2, 2, "LOC")]), (["\u00a0", "Lyon"], [(1, 1, "LOC")])]
    assert read(path, fmt="column") == expected
    assert read(path) == expected, "format detection must also keep the no-break-space word"


def test_column_file_with_a_bad_tag_is_still_read_as_columns(tmp_path):
    path = column(tmp_path, [["EU B-ORG", "rejects O", "German MISC", "call O"]])
    with pytest.raises(DataError, match=r"train.txt: sentence at line 1: tag 'MISC' is not O"):
        read_dataset(path)


def test_plain_text_is_not_mistaken_for_columns(tmp_path):
    path = write(tmp_path, "input.txt", "EU rejects German call .\nPeter Blackburn\n")
    assert [s.entities for s in read_dataset(path)] == [None, None]


def test_write_data_dir_round_trip(write_data_dir, sample_sentences):
    sents = sample_sentences[:20]
    for fmt in ("column", "spanner"):
        path = write_data_dir(sents, dev=sents[:3], fmt=fmt, labels=["PER", "ORG"])
        assert read_dataset(split_path(path, "train", None)) == sents
        assert read_dataset(split_path(path, "dev", None)) == sents[:3]
        assert load_labels(path, sents) == ["O", "PER", "ORG"]


# Labels

def test_labels_from_data_o_first(tmp_path):
    sents = [Sentence(["a", "b"], [(0, 0, "PER"), (1, 1, "LOC")]), Sentence(["c"], [(0, 0, "MISC")]),
             Sentence(["d"], None)]
    assert load_labels(str(tmp_path), sents) == ["O", "LOC", "MISC", "PER"]
    assert load_labels(None, sents) == ["O", "LOC", "MISC", "PER"]


def test_labels_from_labels_txt_keep_their_order(tmp_path):
    write(tmp_path, "labels.txt", "O\nPER\n\nORG\nLOC\nMISC\n")
    sents = [Sentence(["a"], [(0, 0, "LOC")])]
    assert load_labels(str(tmp_path), sents) == ["O", "PER", "ORG", "LOC", "MISC"]


def test_known_labels_accept_matching_data(tmp_path):
    path = column(tmp_path, [["Paris B-LOC"]])
    assert read(path, labels=["O", "LOC"]) == [(["Paris"], [(0, 0, "LOC")])]


# Bad input: every message names the file and the record

def bad_spanner(tmp_path, record):
    return spanner(tmp_path, [{"context": "fine", "span_posLabel": {}}, record])


@pytest.mark.parametrize("record, match", [
    ({"context": "EU rejects", "span_posLabel": {"1;2": "ORG"}}, "span 1;2 lies outside the sentence of 2 words"),
    ({"context": "EU rejects", "span_posLabel": {"-1;0": "ORG"}}, "span -1;0 lies outside"),
    ({"context": "a b c", "span_posLabel": {"0;1": "ORG", "1;2": "PER"}}, "gold spans 0;1 and 1;2 overlap"),
    ({"context": "a b c", "span_posLabel": {"0;2": "ORG", "1;1": "PER"}}, "gold spans 0;2 and 1;1 overlap"),
    ({"context": "a b", "span_posLabel": {"0-1": "ORG"}}, "span key '0-1' is not 'start;end'"),
    ({"context": "a b", "span_posLabel": {"0;x": "ORG"}}, "span key '0;x' is not 'start;end'"),
    ({"context": "a b", "span_posLabel": {"0;0;1": "ORG"}}, "span key '0;0;1' is not 'start;end'"),
    ({"context": "a b", "span_posLabel": [[0, 0, "ORG"]]}, "'span_posLabel' must be an object"),
    ({"words": ["a"]}, "expected an object with a string 'context'"),
    ({"context": "a b", "span_posLabel": {"0;0": 3}}, "the label of span 0;0 is 3, not a label name"),
])
def test_bad_spanner_record(tmp_path, record, match):
    path = bad_spanner(tmp_path, record)
    with pytest.raises(DataError, match=match) as err:
        read_dataset(path)
    assert str(err.value).startswith(f"{path}: record 1: ")


def test_unknown_label_spanner(tmp_path):
    path = bad_spanner(tmp_path, {"context": "a b", "span_posLabel": {"0;0": "PERSON"}})
    with pytest.raises(DataError, match=r": record 1: unknown label 'PERSON' \(known: O, PER, LOC\)") as err:
        read_dataset(path, labels=["O", "PER", "LOC"])
    assert str(err.value).startswith(path)


def test_unknown_label_column(tmp_path):
    path = column(tmp_path, [["a O"], ["b O", "Paris B-GPE"]])
    with pytest.raises(DataError, match=r": sentence at line 3: unknown label 'GPE'") as err:
        read_dataset(path, labels=["O", "LOC"])
    assert str(err.value).startswith(path)


def test_malformed_json(tmp_path):
    path = write(tmp_path, "spanner.dev", '[{"context": "a b",\n "span_posLabel": {"0;0": "PER"}\n')
    with pytest.raises(DataError, match=r"malformed JSON at line 3") as err:
        read_dataset(path)
    assert str(err.value).startswith(path)


def test_spanner_file_that_is_not_a_list(tmp_path):
    path = write(tmp_path, "spanner.dev", '{"context": "a"}')
    with pytest.raises(DataError, match="expected a JSON list of records, got dict") as err:
        read_dataset(path)
    assert str(err.value).startswith(path)


def test_column_line_without_a_tag(tmp_path):
    path = column(tmp_path, [["EU B-ORG", "rejects O"], ["German B-MISC", "call"]])
    with pytest.raises(DataError, match=r": line 5: expected 'word TAG', got 'call'") as err:
        read_dataset(path, fmt="column")
    assert str(err.value).startswith(path)


def test_column_bad_tag(tmp_path):
    path = column(tmp_path, [["EU ORG"]])
    with pytest.raises(DataError, match=r": sentence at line 1: tag 'ORG' is not O or a B-/I-/E-/S- tag") as err:
        read_dataset(path, fmt="column")
    assert str(err.value).startswith(path)


def test_column_missing_column(tmp_path):
    path = column(tmp_path, [["EU NNP B-ORG", "rejects O"]])
    with pytest.raises(DataError, match=r": line 2: no column 2 in 'rejects O'") as err:
        read_dataset(path, column=2)
    assert str(err.value).startswith(path)


def test_missing_file(tmp_path):
    path = str(tmp_path / "nope" / "spanner.train")
    with pytest.raises(DataError, match="no such file") as err:
        read_dataset(path)
    assert str(err.value).startswith(path)


# Locating splits

def test_split_path_layouts(tmp_path):
    spanner(tmp_path, [], "spanner.train")
    column(tmp_path, [], "valid.txt")
    spanner(tmp_path, [], "typos/spanner.test")
    assert split_path(str(tmp_path), "train", None).endswith("spanner.train")
    assert split_path(str(tmp_path), "dev", None).endswith("valid.txt")
    assert split_path(str(tmp_path), "test", "typos") == str(tmp_path / "typos" / "spanner.test")
    with pytest.raises(DataError, match=r"no test file \(looked for spanner.test, test.txt, test.json\)") as err:
        split_path(str(tmp_path), "test", "ori")
    assert str(tmp_path) in str(err.value)


# Real data (../shared/README.md lists the counts; its sentence counts include -DOCSTART-)

CONLL = {"spanner.train": (14987, 23499), "spanner.dev": (3466, 5942), "spanner.test": (3684, 5648),
         "typos/spanner.test": (2676, 5559), "oov/spanner.test": (3684, 5648), "ood/spanner.test": (1840, 3558)}
COLUMN_SETS = {  # sentences in train, dev, test; labels
    "wnut17": ((3394, 1009, 1286), {"person", "location", "corporation", "product", "creative_work", "group"}),
    "twitter": ((4000, 1000, 3257), {"PER", "LOC", "ORG", "OTHER"})}


@pytest.mark.parametrize("name", CONLL)
def test_real_conll03_counts(shared_data, name):
    path = f"{shared_data}/conll03/{name}"
    with open(path, encoding="utf-8") as f:
        docstarts = sum(rec["context"] == "-DOCSTART-" for rec in json.load(f))
    sents = read_dataset(path)
    assert (len(sents) + docstarts, sum(len(s.entities) for s in sents)) == CONLL[name]
    assert load_labels(None, sents) == ["O", "LOC", "MISC", "ORG", "PER"]


@pytest.mark.parametrize("name", COLUMN_SETS)
def test_real_column_sets(shared_data, name):
    sizes, labels = COLUMN_SETS[name]
    splits = [read_dataset(split_path(f"{shared_data}/{name}", split, "ori")) for split in ("train", "dev", "test")]
    assert tuple(map(len, splits)) == sizes
    assert all({label for s in sents for _, _, label in s.entities} == labels for sents in splits)
    if name == "twitter":  # one dev tweet has a lone no-break space as a word
        assert any("\u00a0" in s.words for s in splits[1])


def test_a_byte_order_mark_is_not_part_of_the_first_word(tmp_path):
    for name, text in (("bom.txt", "EU B-ORG\nrejects O\n"), ("bom_text.txt", "EU rejects it.\n"),
                       ("bom.json", json.dumps([{"context": "EU rejects", "span_posLabel": {"0;0": "ORG"}}]))):
        (tmp_path / name).write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
        assert read_dataset(str(tmp_path / name))[0].words[0] == "EU", name
