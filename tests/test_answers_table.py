"""Reply tables for `parse_reply`: each row a reply an LLM could give to the paper's prompt
(inference/llm/prompt.py: options one per line, `Non-entity` last, ending in `Answer:`) and the
label written by hand. None: unparseable, the span keeps its local label."""
import pytest

from inference.llm.answers import parse_answer, parse_reply
from inference.llm.prompt import DATASETS

CONLL = DATASETS["conll03"]

FREE_TEXT = [
    # the options, as listed and in other case
    ("Location", "LOC"), ("Person", "PER"), ("Organization", "ORG"), ("Miscellaneous", "MISC"),
    ("LOCATION", "LOC"), ("location", "LOC"), ("lOcAtIoN", "LOC"), ("pErSoN", "PER"),
    # the dataset's tags, and BIO tags of them (any case, any markdown)
    ("LOC", "LOC"), ("loc", "LOC"), ("MISC", "MISC"), ("misc", "MISC"),
    ("B-LOC", "LOC"), ("I-ORG", "ORG"), ("S-MISC", "MISC"), ("b-per", "PER"), ("**B-PER**", "PER"),
    ("Answer: B-LOC", "LOC"), ("`I-PER`", "PER"),
    # an answer prefix, ASCII or full-width colon, markdown around it, the label on the next line
    ("Answer: Location", "LOC"), ("answer:organization", "ORG"), ("Answer : Person", "PER"),
    ("Answer：Location", "LOC"), ("Answer： Person", "PER"), ("Answer：**Location**", "LOC"),
    ("Entity type: Organization", "ORG"), ("Type: PER", "PER"), ("label: MISC", "MISC"),
    ("Category: Location", "LOC"), ("Category：Location", "LOC"), ("The answer is: Person", "PER"),
    ("**Answer:** Location", "LOC"), ("**Answer**: Location", "LOC"), ("Answer: **Location**", "LOC"),
    ("Answer:\nLocation", "LOC"), ("**Answer:**\nPerson", "PER"), ("Answer：\n\nOrganization", "ORG"),
    # quotes, markdown and punctuation around the label
    ("**Person**", "PER"), ("'Location'", "LOC"), ('"Miscellaneous"', "MISC"), ("“Location”", "LOC"),
    ("‘Person’", "PER"), ("«Location»", "LOC"), ('"Location".', "LOC"), ("`Location`", "LOC"),
    ("```\nLocation\n```", "LOC"), ("> Location", "LOC"), ("- Person", "PER"), ("  LOCATION.\n", "LOC"),
    ("Location!", "LOC"), ("Person?", "PER"), ("Location。", "LOC"), ("**Location**.", "LOC"),
    # an explanation after the label: on later lines, or in parentheses
    ("Person\nBecause it names a human.", "PER"), ("Location\n\nExplanation: Paris is a city.", "LOC"),
    ("Location (a city)", "LOC"), ("Answer: Organization (a company)", "ORG"),
    ("Non-entity (a common noun)", "O"), ("\n\nMiscellaneous\n", "MISC"),
    # the first line decides
    ("Location\nPerson", "LOC"), ("Answer: Location\nAnswer: Person", "LOC"),
    # the Non-entity option, and replies that decline every type in other words
    ("Non-entity", "O"), ("non entity", "O"), ("NON-ENTITY", "O"), ("Non-entity.", "O"),
    ("Answer: Non-entity", "O"), ("Answer：Non-entity", "O"), ("O", "O"), ("Answer: O", "O"),
    ("None", "O"), ("none", "O"), ("N/A", "O"), ("n/a", "O"), ("Answer: N/A", "O"), ("Not applicable", "O"),
    ("Not an entity.", "O"), ("No entity", "O"), ("None of the above", "O"), ("none of the above.", "O"),
    ("Answer: None of the above", "O"), ("null", "O"),
    # unparseable: no option, a sentence around the label, two options, nothing at all
    ("", None), ("   ", None), ("\n\n", None), (None, None), ("Answer:", None), ("Answer：", None),
    ("Planet", None), ("I am not sure", None), ("It is not a Person", None), ("not a Person", None),
    ("It is a Location.", None), ("The entity type is Location.", None),
    ("Location or Person", None), ("Location, Person", None), ("Person/Location", None),
    ("Location and Organization", None), ("Answer: Location, Person", None), ("Answer: Location or Person", None),
]


@pytest.mark.parametrize("reply, label", FREE_TEXT)
def test_free_replies_to_the_conll_prompt(reply, label):
    assert parse_reply(reply, CONLL) == (label, None)
    assert parse_answer(reply, CONLL) == label


STRUCTURED = [
    ('{"answer": "Location"}', "LOC", {"LOC": 1.0}),
    ('  {"answer":"Person"}\n', "PER", {"PER": 1.0}),
    ('{"answer": "B-LOC"}', "LOC", {"LOC": 1.0}),
    ('{"answer": "Non-entity"}', "O", {"O": 1.0}),
    ('{"answer": "N/A"}', "O", {"O": 1.0}),
    ('```json\n{"answer": "Person"}\n```', "PER", {"PER": 1.0}),
    ('```\n{"answer": "Organization"}\n```', "ORG", {"ORG": 1.0}),
    ('{"answer": "Person", "probs": {"Person": 0.9, "Location": 0.1}}', "PER", {"PER": 0.9, "LOC": 0.1}),
    ('{"answer": "Non-entity", "probs": {"Location": 0.25, "Non-entity": 0.75}}', "O", {"LOC": 0.25, "O": 0.75}),
    ('{"answer": "Location", "probs": {"LOC": 0.5, "Location": 0.25, "Person": 0.25}}', "LOC",
     {"LOC": 0.75, "PER": 0.25}),  # two spellings of one option add up
    # probabilities that are not a map of numbers are ignored, not a crash
    ('{"answer": "Location", "probs": "high"}', "LOC", {"LOC": 1.0}),
    ('{"answer": "Location", "probs": {"Location": "0.9"}}', "LOC", {"LOC": 1.0}),
    ('{"answer": "Location", "probs": [0.9, 0.1]}', "LOC", {"LOC": 1.0}),
    ('{"answer": "Location", "probs": {"Location": true}}', "LOC", {"LOC": 1.0}),
    ('{"answer": "Location", "probs": {}}', "LOC", {"LOC": 1.0}),
    ('{"answer": "Planet"}', None, None),
    ('{"answer": "Location or Person"}', None, None),
    # JSON that is not {"answer": str}: read as free text
    ('{"type": "Location"}', "LOC", None),
    ('{"answer": 3}', None, None),
    ('{"answer": "Location"', "LOC", None),  # cut short: free text still names Location
]


@pytest.mark.parametrize("reply, label, probs", STRUCTURED)
def test_structured_replies(reply, label, probs):
    tag, got = parse_reply(reply, CONLL)
    assert tag == label
    assert got == (None if probs is None else pytest.approx(probs))


@pytest.mark.parametrize("dataname, reply, label", [
    ("wnut17", "Creative-work", "creative_work"), ("wnut17", "creative work", "creative_work"),
    ("wnut17", "creative_work", "creative_work"), ("wnut17", "B-creative_work", "creative_work"),
    ("wnut17", "Answer：Corporation", "corporation"), ("wnut17", "Group (a band)", "group"),
    ("wnut17", "None of the above", "O"), ("wnut17", "Location", "location"), ("wnut17", "Miscellaneous", None),
    ("ontonotes5", "WORK_OF_ART", "WORK_OF_ART"), ("ontonotes5", "Work of art", "WORK_OF_ART"),
    ("ontonotes5", "Facility", "FAC"), ("ontonotes5", "FAC", "FAC"), ("ontonotes5", "B-GPE", "GPE"),
    ("ontonotes5", "Location", "LOC"), ("ontonotes5", "N/A", "O"), ("ontonotes5", "Person", "PERSON"),
    ("twitter", "Other", "OTHER"), ("twitter", "**Other**", "OTHER"), ("twitter", "Miscellaneous", None),
])
def test_other_label_sets(dataname, reply, label):
    assert parse_reply(reply, DATASETS[dataname]) == (label, None)
