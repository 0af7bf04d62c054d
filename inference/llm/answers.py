"""Map an LLM reply to a label of the prompt's label set, or to None when it names none.

The reply may differ from an option in case, spacing, punctuation or markdown, start with
"Answer:" (ASCII or full-width colon, on its own line too, as the prompt's last line reads),
give the dataset's tag instead of the option's name (`LOC` for `Location`), a BIO tag (`B-LOC`),
or end in a parenthetical remark (`Location (a city)`). Only the whole reply, its first line, or
what follows a colon on that line count, so "not a Person" and "It is a Location" stay
unparseable (None: the span keeps its local label), and so do replies naming two options.

Non-entity: the prompt's last option is `Non-entity`, the answer for a span that is none of the
entity types. A reply that declines every type in other words (`None`, `O`, `N/A`, `Not an
entity`, `None of the above`) says the same and maps to "O" too.

A structured reply (`--answer_mode choice`) is a JSON object `{"answer": OPTION}` (also inside a
```json code fence), optionally with `"probs": {OPTION: p, ...}` (the local model's scored
options); `parse_reply` reads both, and ignores `probs` that are not a map of numbers.
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Collection

from inference.llm.prompt import label_key

if TYPE_CHECKING:
    from inference.llm.prompt import LabelSpec

NON_ENTITY_KEYS = {"nonentity", "notanentity", "noentity", "non", "none", "o", "null", "nil", "na",
                   "notapplicable", "noneoftheabove", "noneofthese"}
# "Answer:", "**Answer:**", "Entity type：" ...: markdown around the word, an ASCII or full-width colon
PREFIX = re.compile(r"^[\s*_#>`]*(answer|entity type|type|label)[\s*_`]*[:：][\s*_`]*", re.IGNORECASE)
COLON = re.compile(r"[:：]")
BIO = re.compile(r"^[BIESLU]-(?=\w)", re.IGNORECASE)
REMARK = re.compile(r"\s*\([^()]*\)$")  # a trailing "(a city)"
FENCE = re.compile(r"^```[a-z]*\s*(.*?)\s*```$", re.IGNORECASE | re.DOTALL)
STRIP = "*`'\"“”‘’.,;!"


def answer_keys(spec: LabelSpec) -> dict[str, str]:
    """{spelling-insensitive name or tag: tag}, non-entity words -> "O"."""
    keys = dict.fromkeys(NON_ENTITY_KEYS, "O")
    for tag, name in spec.options:
        keys[label_key(tag)] = tag
        keys[label_key(name)] = tag
    return keys


def _first_line(text):
    return next((line for line in text.splitlines() if line.strip()), "").strip()


def _candidates(reply):
    text = reply.strip()
    first = _first_line(text)
    yield text
    yield first
    yield PREFIX.sub("", first)
    yield _first_line(PREFIX.sub("", text))  # "Answer:" on a line of its own
    yield COLON.split(first)[-1]


def parse_answer(reply: str | None, spec: LabelSpec) -> str | None:
    """The tag (or "O") that `reply` names, None if unparseable."""
    keys = answer_keys(spec)
    for candidate in _candidates(reply or ""):
        for text in (candidate, REMARK.sub("", candidate)):
            tag = keys.get(label_key(BIO.sub("", text.strip().strip(STRIP))))
            if tag is not None:
                return tag
    return None


def _structured(reply):
    """The JSON object of a structured reply, or None for free text."""
    text = (reply or "").strip()
    fenced = FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    if not text.startswith("{"):
        return None
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) and isinstance(obj.get("answer"), str) else None


def _probabilities(probs):
    """`probs` if it is a non-empty {option: finite number}, else None."""
    if not isinstance(probs, dict) or not probs:
        return None
    numbers = [isinstance(p, (int, float)) and not isinstance(p, bool) and math.isfinite(p) for p in probs.values()]
    return probs if all(numbers) else None


def parse_reply(reply: str | None, spec: LabelSpec) -> tuple[str | None, dict | None]:
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
    probs: dict[str, float] = {}
    for option, p in (_probabilities(obj.get("probs")) or {tag: 1.0}).items():
        option_tag = keys.get(label_key(option), option) if option != tag else tag
        probs[option_tag] = probs.get(option_tag, 0.0) + float(p)
    return tag, probs


def is_structured(reply: str | None, options: Collection[str]) -> bool:
    """Whether `reply` is the JSON object a schema restricted to `options` asks for."""
    obj = _structured(reply)
    return obj is not None and obj["answer"] in options
