"""Choice mode's option distribution from a server's log-probabilities, on hand-made token tables
(every expected value counted by hand), and a server whose log-probabilities are out of range
(1000, NaN, inf): the reply counts as one without probabilities, said once, no traceback."""
import json
import math
from types import SimpleNamespace as NS

import pytest

from inference.llm.backends import OpenAIBackend
from inference.llm.linker import Linker
from inference.llm.logprobs import InvalidLogprob, option_probs
from inference.llm.prompt import DATASETS, PromptBuilder
from tests.helpers import no_real_openai  # noqa: F401 (autouse fixture)
from tests.support.loopback_server import LLMServer, entity_of

BEFORE = ('{"', "answer", '":', ' "')


def table(alternatives, chosen="Lo", before=BEFORE):
    """A structured reply's tokens: `before`, then the deciding token `chosen` with `alternatives`
    (token, probability), then the rest."""
    alts = [(tok, math.log(p) if p > 0 else -math.inf) for tok, p in alternatives]
    return [(t, [(t, 0.0)]) for t in before] + [(chosen, alts), ("cation", [("cation", 0.0)]), ('"}', [('"}', 0.0)])]


OPTIONS = ["Location", "Loan", "Person", "Non-entity"]


@pytest.mark.parametrize("alternatives, expected", [
    # one token per option, the mass already summing to 1
    ([("Loc", 0.5), ("Per", 0.3), ("Non", 0.2)], {"Location": 0.5, "Loan": 0.0, "Person": 0.3, "Non-entity": 0.2}),
    # "Lo" starts Location and Loan: its 0.6 is split 0.3 / 0.3
    ([("Lo", 0.6), ("Per", 0.4)], {"Location": 0.3, "Loan": 0.3, "Person": 0.4, "Non-entity": 0.0}),
    # a token longer than the option's name (it carries the closing quote) still names it
    ([('Person"', 0.25), ("Loc", 0.75)], {"Location": 0.75, "Loan": 0.0, "Person": 0.25, "Non-entity": 0.0}),
    ([('Non-entity"}', 0.5), ("Loa", 0.5)], {"Location": 0.0, "Loan": 0.5, "Person": 0.0, "Non-entity": 0.5}),
    # case does not matter; a token naming no option is left out, and the rest renormalised:
    # 0.2 / (0.2 + 0.2) each
    ([("per", 0.2), ("LOC", 0.2), ("Zebra", 0.6)], {"Location": 0.5, "Loan": 0.0, "Person": 0.5, "Non-entity": 0.0}),
    # a token that does not continue the text before the name (no opening quote space) is left out
    ([(" {", 0.5), ("Per", 0.1), ("Lo", 0.4)], {"Location": 0.4, "Loan": 0.4, "Person": 0.2, "Non-entity": 0.0}),
    # an alternative of probability 0 (log-probability -inf) adds nothing
    ([("Loc", 1.0), ("Per", 0.0)], {"Location": 1.0, "Loan": 0.0, "Person": 0.0, "Non-entity": 0.0}),
])
def test_option_probabilities_on_token_tables(alternatives, expected):
    assert option_probs(table(alternatives), OPTIONS) == pytest.approx(expected, abs=1e-12)


def test_a_deciding_token_that_repeats_the_quote_is_matched_after_it():
    toks = table([(' "Per', 0.3), (' "Loc', 0.6), (' "', 0.1)], chosen=' "Loc', before=('{"', "answer", '":'))
    # ' "' alone continues the text but names nothing (empty piece): left out; 0.3 / 0.9 and 0.6 / 0.9
    assert option_probs(toks, OPTIONS) == pytest.approx({"Location": 2 / 3, "Loan": 0.0, "Person": 1 / 3,
                                                         "Non-entity": 0.0})


@pytest.mark.parametrize("bad", [1000.0, math.nan, math.inf, 0.5, None, "-1"])
def test_an_out_of_range_log_probability_is_refused(bad):
    toks = table([("Loc", 0.5), ("Per", 0.5)])
    toks[4] = (toks[4][0], [("Loc", math.log(0.5)), ("Per", bad)])
    with pytest.raises(InvalidLogprob, match="Per"):
        option_probs(toks, OPTIONS)


def test_rounding_above_zero_and_minus_infinity_are_in_range():
    toks = table([])
    toks[4] = (toks[4][0], [("Loc", 1e-9), ("Per", -math.inf)])
    assert option_probs(toks, OPTIONS) == pytest.approx({"Location": 1.0, "Loan": 0.0, "Person": 0.0,
                                                         "Non-entity": 0.0})


# -- the backend: such a reply counts as without probabilities, said once -------------------

def fake_reply(text, logprob_of_per):
    """An OpenAI SDK reply to `{"answer": "Location"}` whose deciding token's alternatives are
    Loc (p 0.5) and Per with `logprob_of_per`."""
    pieces = ['{"', "answer", '":', ' "', "Loc", "ation", '"}']
    content = []
    for i, piece in enumerate(pieces):
        alts = ([NS(token="Loc", logprob=math.log(0.5)), NS(token="Per", logprob=logprob_of_per)] if i == 4
                else [NS(token=piece, logprob=0.0)])
        content.append(NS(token=piece, logprob=alts[0].logprob, top_logprobs=alts))
    return NS(choices=[NS(logprobs=NS(content=content), message=NS(content=text))])


def test_the_backend_keeps_the_answer_alone_and_says_it_once(capsys):
    backend = OpenAIBackend(model="m", base_url="http://127.0.0.1:9/v1", options=OPTIONS)
    text = json.dumps({"answer": "Location"})
    for bad in (1000.0, math.nan, math.inf):
        assert backend._with_probs(fake_reply(text, bad), text) == text  # no "probs": certain
    good = json.loads(backend._with_probs(fake_reply(text, math.log(0.5)), text))
    assert good == {"answer": "Location", "probs": pytest.approx({"Location": 0.5, "Loan": 0.0, "Person": 0.5,
                                                                  "Non-entity": 0.0})}
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and "invalid log-probability 1000.0" in err


CONLL = DATASETS["conll03"].option_names()


def test_a_server_sending_infinite_log_probabilities_links_without_them(capsys):
    """End to end through the SDK: the server's JSON holds Infinity; every answer is kept, certain."""
    answer = lambda prompt: "Organization" if entity_of(prompt) == "EU" else "Miscellaneous"  # noqa: E731
    with LLMServer(answer=answer, structured="honour",
                   logprobs=lambda prompt: {"Organization": math.inf, "Location": 0.2}) as server:
        backend = OpenAIBackend(model="m", base_url=server.base_url, timeout=5, options=CONLL)
        linker = Linker(backend, PromptBuilder(DATASETS["conll03"]), threshold=0.4, max_attempts=2, concurrency=2)
        recs = [{"id": i, "sentence": f"EU rejects German call {i}",
                 "entity": [{"entity": "EU", "span": [0, 0], "pred": "ORG", "uncertainty": 0.9},
                            {"entity": "German", "span": [2, 2], "pred": "O", "uncertainty": 0.6}]} for i in range(3)]
        asked = [s for rec in linker.link_records(recs) for s in rec["entity"]]
    assert [(s["llm_status"], s["llm_pred"], s["llm_probs"]) for s in asked] == \
        [("linked", "ORG", {"ORG": 1.0}), ("linked", "MISC", {"MISC": 1.0})] * 3
    err = capsys.readouterr().err
    assert err.count("invalid log-probability inf") == 1 and "Traceback" not in err
