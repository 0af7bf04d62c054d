import pytest

from inference.llm.answers import parse_answer
from inference.llm.prompt import DATASETS


@pytest.mark.parametrize("reply, label", [
    ("Location", "LOC"),
    ("location", "LOC"),
    ("  LOCATION.\n", "LOC"),
    ("Answer: Location", "LOC"),
    ("answer:organization", "ORG"),
    ("**Person**", "PER"),
    ("\"Miscellaneous\"", "MISC"),
    ("LOC", "LOC"),
    ("B-PER", "PER"),
    ("Person\nBecause it names a human.", "PER"),
    ("Entity type: Organization", "ORG"),
    ("Non-entity", "O"),
    ("non entity", "O"),
    ("None", "O"),
    ("O", "O"),
    ("Not an entity.", "O"),
])
def test_replies_map_to_conll_labels(reply, label):
    assert parse_answer(reply, DATASETS["conll03"]) == label


@pytest.mark.parametrize("reply", ["", "   ", "I am not sure", "It is not a Person", "Location or Person",
                                   "Planet", None])
def test_unparseable_replies_give_none(reply):
    assert parse_answer(reply, DATASETS["conll03"]) is None


@pytest.mark.parametrize("dataname, reply, label", [
    ("wnut17", "Creative-work", "creative_work"),
    ("wnut17", "creative work", "creative_work"),
    ("wnut17", "corporation", "corporation"),
    ("ontonotes5", "WORK_OF_ART", "WORK_OF_ART"),
    ("ontonotes5", "Facility", "FAC"),
    ("ontonotes5", "LOC", "LOC"),
    ("ontonotes5", "Location", "LOC"),
    ("ontonotes5", "GPE", "GPE"),
    ("twitter", "Other", "OTHER"),
])
def test_other_datasets_full_names_and_tags(dataname, reply, label):
    assert parse_answer(reply, DATASETS[dataname]) == label
