import pytest

from inference.llm.answers import parse_answer, parse_reply
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


@pytest.mark.parametrize("reply, tag, probs", [
    ('{"answer": "Location"}', "LOC", {"LOC": 1.0}),
    ('{"answer": "Non-entity", "probs": {"Location": 0.25, "Non-entity": 0.75}}', "O", {"LOC": 0.25, "O": 0.75}),
    ('{"answer": "Planet"}', None, None),
    ("Location", "LOC", None),  # free text: no probabilities
    ('{"type": "Location"}', "LOC", None),  # JSON without an answer: read as free text
])
def test_structured_replies_give_the_answer_and_its_probabilities(reply, tag, probs):
    assert parse_reply(reply, DATASETS["conll03"]) == (tag, probs)
