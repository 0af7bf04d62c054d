"""Map an LLM reply to a label of the prompt's label set, or to None when it names none.

The reply may differ from an option in case, spacing, punctuation or markdown, start with
"Answer:", give the dataset's tag instead of the option's name (`LOC` for `Location`), or a
BIO tag (`B-LOC`). `Non-entity`, `None`, `O` and the like map to "O". Only the whole reply, its
first line, or what follows a colon on that line count, so "not a Person" stays unparseable.
"""
import re

from inference.llm.prompt import label_key

NON_ENTITY_KEYS = {"nonentity", "notanentity", "noentity", "non", "none", "o", "null", "nil", "na"}
PREFIX = re.compile(r"^\s*(answer|entity type|type|label)\s*[:：]\s*", re.IGNORECASE)
BIO = re.compile(r"^[BIESLU]-(?=\w)")


def answer_keys(spec):
    """{spelling-insensitive name or tag: tag}, non-entity words -> "O"."""
    keys = dict.fromkeys(NON_ENTITY_KEYS, "O")
    for tag, name in spec.options:
        keys[label_key(tag)] = tag
        keys[label_key(name)] = tag
    return keys


def _candidates(reply):
    text = reply.strip()
    first = next((line for line in text.splitlines() if line.strip()), "").strip()
    yield text
    yield first
    yield PREFIX.sub("", first)
    yield first.rsplit(":", 1)[-1]


def parse_answer(reply, spec):
    """The tag (or "O") that `reply` names, None if unparseable."""
    keys = answer_keys(spec)
    for candidate in _candidates(reply or ""):
        candidate = BIO.sub("", candidate.strip().strip("*`'\"“”‘’.,;!"))
        tag = keys.get(label_key(candidate))
        if tag is not None:
            return tag
    return None
