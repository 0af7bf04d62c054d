"""A distribution over the options from a server's token log-probabilities (`--answer_mode
choice` over an OpenAI-compatible server that returns `logprobs` / `top_logprobs`).

The structured reply is `{"answer": "OPTION"}`. The token that starts the option's name decides
which option the server chose, so its `top_logprobs` say how likely each option was: every
alternative token that continues the text before the name, and starts one or more option names
(case-insensitive), gives its probability to those options (split evenly among them). The
result is normalised over the options found. None when the reply has no log-probabilities, the
answer cannot be located among its tokens, or no alternative names an option: the caller then
keeps the answer alone (all its probability on the chosen option). A log-probability at the
deciding token that is not a number from -inf to 0 (1000, NaN, inf: a broken server) is an
`InvalidLogprob`: the caller counts that reply as one without probabilities, and says so.
"""
from __future__ import annotations

import math
import re
from typing import Optional, Sequence

VALUE_START = re.compile(r'"answer"\s*:\s*"')

Alternatives = Sequence[tuple[str, float]]  # (token, log-probability), the server's top_logprobs
MAX_LOGPROB = 1e-6  # a log-probability above 0 by more than rounding is out of range


class InvalidLogprob(ValueError):
    """A log-probability that is not a number from -inf to 0: the reply has no usable probabilities."""


def _checked(alternatives: Alternatives) -> Alternatives:
    """`alternatives`, once each log-probability is known to be a number from -inf to 0."""
    for alt, logprob in alternatives:
        if (isinstance(logprob, bool) or not isinstance(logprob, (int, float)) or math.isnan(logprob)
                or logprob == math.inf or logprob > MAX_LOGPROB):
            raise InvalidLogprob(f"log-probability {logprob!r} of the token {alt!r}")
    return alternatives


def option_probs(tokens: Sequence[tuple[str, Alternatives]], options: Sequence[str]) -> Optional[dict[str, float]]:
    """{option: probability} from the reply's tokens, each (token, its top alternatives); an
    `InvalidLogprob` when a log-probability of the deciding token is out of range."""
    if not tokens or not options:
        return None
    text = "".join(token for token, _ in tokens)
    found = VALUE_START.search(text)
    if found is None:
        return None
    start, offset = found.end(), 0
    for token, alternatives in tokens:
        if offset + len(token) > start:
            break
        offset += len(token)
    else:
        return None
    before = text[offset:start]  # what the deciding token repeats before the option's name
    mass: dict[str, float] = {}
    for alt, logprob in _checked(alternatives or [(token, 0.0)]):
        if not alt.startswith(before):
            continue
        piece = alt[len(before):].lower()
        if not piece:
            continue
        named = [o for o in options if o.lower().startswith(piece) or piece.startswith(o.lower())]
        for option in named:
            mass[option] = mass.get(option, 0.0) + math.exp(min(logprob, 0.0)) / len(named)
    total = sum(mass.values())
    if total <= 0:
        return None
    return {option: mass.get(option, 0.0) / total for option in options}


def reply_tokens(choice: object) -> Optional[list[tuple[str, list[tuple[str, float]]]]]:
    """The (token, top alternatives) pairs of an OpenAI SDK choice, or None when it has none."""
    content = getattr(getattr(choice, "logprobs", None), "content", None)
    if not content:
        return None
    out = []
    for item in content:
        token = getattr(item, "token", None)
        if not isinstance(token, str):
            return None
        alternatives = [(alt.token, alt.logprob) for alt in (getattr(item, "top_logprobs", None) or [])
                        if isinstance(getattr(alt, "token", None), str)]
        out.append((token, alternatives or [(token, getattr(item, "logprob", 0.0))]))
    return out
