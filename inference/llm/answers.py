"""Map an LLM reply to a label of the prompt's label set, or to None when it names none.

The reply may differ from an option in case, spacing, punctuation or markdown, start with
"Answer:", give the dataset's tag instead of the option's name (`LOC` for `Location`), or a
BIO tag (`B-LOC`). `Non-entity`, `None`, `O` and the like map to "O". Only the whole reply, its
first line, or what follows a colon on that line count, so "not a Person" stays unparseable.

A structured reply (`--answer_mode choice`) is a JSON object `{"answer": OPTION}`, optionally
with `"probs": {OPTION: p, ...}` (the local model's scored options); `parse_reply` reads both.
"""
import json
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


def _structured(reply):
    """The JSON object of a structured reply, or None for free text."""
    text = (reply or "").strip()
    if not text.startswith("{"):
        return None
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) and isinstance(obj.get("answer"), str) else None


def parse_reply(reply, spec):
    """(tag or "O" or None, {tag: probability} or None) of a free or structured reply.

    A structured reply with `probs` gives them per tag ("O" for Non-entity); without them the
    distribution is all on the answer (a server returns one option, not a distribution).
    """
    obj = _structured(reply)
    if obj is None:
        return parse_answer(reply, spec), None
    tag = parse_answer(obj["answer"], spec)
    if tag is None:
        return None, None
    keys = answer_keys(spec)
    probs = {}
    for option, p in (obj.get("probs") or {tag: 1.0}).items():
        option_tag = keys.get(label_key(option), option) if option != tag else tag
        probs[option_tag] = probs.get(option_tag, 0.0) + float(p)
    return tag, probs


def is_structured(reply, options):
    """Whether `reply` is the JSON object a schema restricted to `options` asks for."""
    obj = _structured(reply)
    return obj is not None and obj["answer"] in options
