import os
import shutil
import urllib.request

import pytest

from data import make_sample, prepare
from dataloaders.readers import read_dataset, split_path
from tests.helpers import REPO
from utils.errors import DataError

SAMPLE = os.path.join(REPO, "data", "sample")
SPLITS = ("train", "dev", "test")


def surfaces(sentences):
    return [(" ".join(s.words[a:b + 1]), label) for s in sentences for a, b, label in s.entities]


@pytest.fixture(scope="module")
def sample():
    return {split: read_dataset(os.path.join(SAMPLE, f"{split}.txt")) for split in SPLITS}


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("tests must not touch the network")
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def test_sizes_and_labels(sample):
    assert {split: len(sents) for split, sents in sample.items()} == make_sample.SIZES
    for sents in sample.values():
        assert {label for _, label in surfaces(sents)} == {"PER", "ORG", "LOC", "MISC"}
        assert all(len(s.words) <= 40 for s in sents)


def test_found_by_split_path(sample):
    assert [os.path.basename(split_path(SAMPLE, split, "ori")) for split in SPLITS] == ["train.txt", "dev.txt", "test.txt"]


def test_test_split_has_unseen_entities(sample):
    seen = set(surfaces(sample["train"]))
    test = surfaces(sample["test"])
    unseen = [x for x in test if x not in seen]
    assert len(unseen) >= 0.1 * len(test)
    assert {label for _, label in unseen} == {"PER", "ORG", "LOC", "MISC"}
    assert len(test) - len(unseen) >= 0.3 * len(test), "test should also share names with train"


def test_regenerates_identical_files(tmp_path):
    make_sample.main(["--out", str(tmp_path)])
    for split in SPLITS:
        with open(os.path.join(SAMPLE, f"{split}.txt"), "rb") as committed:
            assert (tmp_path / f"{split}.txt").read_bytes() == committed.read(), split


def test_other_seed_gives_other_data(tmp_path):
    make_sample.main(["--out", str(tmp_path), "--seed", "2"])
    with open(os.path.join(SAMPLE, "test.txt"), "rb") as committed:
        assert (tmp_path / "test.txt").read_bytes() != committed.read()


def test_prepare_convert_only(tmp_path, sample):
    src = tmp_path / "col"
    shutil.copytree(SAMPLE, src)
    os.rename(src / "dev.txt", src / "valid.txt")  # CoNLL's name for the dev split
    assert prepare.main(["--convert_only", str(src), "--out", str(tmp_path / "json")]) == 0
    for split in SPLITS:
        back = read_dataset(str(tmp_path / "json" / f"spanner.{split}"))
        assert [s.words for s in back] == [s.words for s in sample[split]]
        assert [s.entities for s in back] == [s.entities for s in sample[split]]


def test_prepare_convert_only_test_split_next_to_source(tmp_path, sample):
    shutil.copy(os.path.join(SAMPLE, "test.txt"), tmp_path / "test.txt")
    assert prepare.convert_dir(str(tmp_path)) == {"test": 100}
    assert read_dataset(str(tmp_path / "spanner.test"))[0].entities == sample["test"][0].entities


def test_prepare_errors(tmp_path, capsys):
    with pytest.raises(DataError, match="no column file"):
        prepare.convert_dir(str(tmp_path))
    (tmp_path / "train.txt").write_text("John B-PER\nSmith Q-PER\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="error: .*train.txt: sentence at line 1: tag 'Q-PER'"):
        prepare.main(["--convert_only", str(tmp_path)])

