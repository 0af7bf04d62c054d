import json
import os
import subprocess
import sys

import pytest

from dataloaders.convert import main, to_spanner_records, write_spanner_json
from dataloaders.readers import Sentence, read_dataset
from tests.helpers import REPO
from utils.errors import DataError

CONLL_DEV = os.path.join(REPO, "..", "shared", "data", "conll03", "spanner.dev")

# the same two sentences tagged in three schemes, and the entities all three encode
WORDS = [["John", "Smith", "Mary", "Jones", "visited", "New", "York", "."],
         ["Acme", "Corp", "hired", "Ann", "from", "Oslo", "Labs", "in", "May"]]
TAGS = {
    "bio": [["B-PER", "I-PER", "B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O"],
            ["B-ORG", "I-ORG", "O", "B-PER", "O", "B-ORG", "I-ORG", "O", "B-MISC"]],
    "iob1": [["I-PER", "I-PER", "B-PER", "I-PER", "O", "I-LOC", "I-LOC", "O"],
             ["I-ORG", "I-ORG", "O", "I-PER", "O", "I-ORG", "I-ORG", "O", "I-MISC"]],
    "iobes": [["B-PER", "E-PER", "B-PER", "E-PER", "O", "B-LOC", "E-LOC", "O"],
              ["B-ORG", "E-ORG", "O", "S-PER", "O", "B-ORG", "E-ORG", "O", "S-MISC"]],
}
ENTITIES = [[(0, 1, "PER"), (2, 3, "PER"), (5, 6, "LOC")],
            [(0, 1, "ORG"), (3, 3, "PER"), (5, 6, "ORG"), (8, 8, "MISC")]]


def write_column(path, tags, extra_column=False):
    with open(path, "w", encoding="utf-8") as f:
        for words, sent_tags in zip(WORDS, tags):
            for w, t in zip(words, sent_tags):
                f.write(f"{w} NN {t}\n" if extra_column else f"{w}\t{t}\n")
            f.write("\n")


@pytest.mark.parametrize("scheme", sorted(TAGS))
def test_round_trip_column_to_spanner(tmp_path, scheme):
    src, out = tmp_path / f"{scheme}.txt", tmp_path / "out" / "spanner.train"
    write_column(src, TAGS[scheme])
    original = read_dataset(str(src))
    assert [s.entities for s in original] == ENTITIES
    assert main([str(src), str(out)]) == 0
    back = read_dataset(str(out))
    assert [s.words for s in back] == WORDS
    assert [s.entities for s in back] == ENTITIES


def test_records_and_layout(tmp_path):
    sentences = [Sentence(WORDS[0], ENTITIES[0]), Sentence(["Zürich", "wins"], None)]
    records = to_spanner_records(sentences)
    assert records[0] == {"context": " ".join(WORDS[0]),
                          "span_posLabel": {"0;1": "PER", "2;3": "PER", "5;6": "LOC"}}
    assert records[1] == {"context": "Zürich wins", "span_posLabel": {}}
    path = tmp_path / "spanner.test"
    assert write_spanner_json(sentences, str(path)) == 2
    text = path.read_text(encoding="utf-8")
    assert text.startswith('[\n  {\n    "context": ')
    assert "Zürich" in text  # written as is, not as \u escapes
    assert json.loads(text) == records


def test_column_option_picks_the_tag_column(tmp_path):
    src, out = tmp_path / "three.txt", tmp_path / "spanner.dev"
    write_column(src, TAGS["bio"], extra_column=True)
    assert main([str(src), str(out), "--format", "column", "--column", "2"]) == 0
    assert [s.entities for s in read_dataset(str(out))] == ENTITIES
    # column 1 holds the POS tag "NN", which is no BIO tag
    with pytest.raises(SystemExit, match="error: .*three.txt: sentence at line 1: tag 'NN'"):
        main([str(src), str(out), "--column", "1"])


def test_the_output_may_not_be_the_input(tmp_path):
    src = tmp_path / "train.txt"
    write_column(src, TAGS["bio"])
    before = src.read_bytes()
    run = subprocess.run([sys.executable, "-m", "dataloaders.convert", str(src), str(src)], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and run.stderr.startswith(f"error: {src}: is also the input"), run.stderr
    assert src.read_bytes() == before


def test_words_that_would_not_survive_the_round_trip_are_refused():
    with pytest.raises(DataError, match="sentence 1: word 'New York'"):
        to_spanner_records([Sentence(["a"]), Sentence(["New York", "b"])])


def test_errors_are_one_line_with_exit_code_1(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("John B-PER\nSmith X-PER\n", encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "dataloaders.convert", str(bad), str(tmp_path / "o.json"),
                          "--format", "column"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert run.stderr.strip().count("\n") == 0
    assert f"{bad}: sentence at line 1" in run.stderr and "'X-PER'" in run.stderr
    assert not (tmp_path / "o.json").exists()


def test_missing_and_binary_input(tmp_path):
    with pytest.raises(SystemExit, match="error: .*nope.txt: no such file"):
        main([str(tmp_path / "nope.txt"), str(tmp_path / "o.json")])
    binary = tmp_path / "blob.txt"
    binary.write_bytes(b"\xff\xfe\x00word O\n")
    with pytest.raises(SystemExit, match=f"error: {binary}: not UTF-8 text"):
        main([str(binary), str(tmp_path / "o.json"), "--format", "column"])


def test_paper_file_is_reproduced(tmp_path):
    if not os.path.isfile(CONLL_DEV):
        pytest.skip("real CoNLL-2003 data not found at ../shared/data")
    out = tmp_path / "spanner.dev"
    assert main([CONLL_DEV, str(out)]) == 0
    with open(CONLL_DEV, encoding="utf-8") as f:
        # the reader drops -DOCSTART- records, everything else must come back byte for byte
        kept = [r for r in json.load(f) if r["context"].split() not in ([], ["-DOCSTART-"])]
    assert out.read_text(encoding="utf-8") == json.dumps(kept, sort_keys=True, ensure_ascii=False, indent=2)
