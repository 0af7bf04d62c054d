"""The backends: the local model on a tiny random Llama (conftest `tiny_llama`; no download, a few
seconds on CPU), and choice mode against the loopback server."""
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import json  # noqa: E402

from inference.llm.answers import parse_answer  # noqa: E402
from inference.llm.linker import Linker  # noqa: E402
from inference.llm.backends import HFBackend, OpenAIBackend, make_backend  # noqa: E402
from inference.llm.settings import LinkSettings  # noqa: E402
from tests.support.loopback_server import LLMServer, entity_of  # noqa: E402
from inference.llm.prompt import DATASETS, PromptBuilder  # noqa: E402
from tests.helpers import no_real_openai  # noqa: E402,F401 (autouse fixture)


def record(i):
    return {"id": i, "sentence": f"EU rejects German call {i}",
            "entity": [{"entity": "German", "span": [2, 2], "pred": "O", "uncertainty": 0.6},
                       {"entity": "EU", "span": [0, 0], "pred": "ORG", "uncertainty": 0.9},
                       {"entity": "call", "span": [3, 3], "pred": "O", "uncertainty": 0.1}]}


def test_batched_generation_through_the_chat_template(tiny_llama):
    backend = make_backend(LinkSettings(save_file="out.jsonl", llm_name="qwen", llm_ckpt=tiny_llama, max_tokens=4,
                                        concurrency=3, seed=0))
    assert isinstance(backend, HFBackend) and backend.tokenizer.padding_side == "left"
    seen = []
    template = backend.tokenizer.apply_chat_template

    def spy(chats, **kw):
        seen.extend(chats)
        return template(chats, **kw)

    backend.tokenizer.apply_chat_template = spy
    prompts = ["the cat", "a dog ran in the park today and then", "green"]  # different lengths: padding
    replies = backend.complete_batch(prompts)
    assert [chat[-1] for chat in seen] == [{"role": "user", "content": p} for p in prompts]
    assert all(chat[0]["role"] == "system" for chat in seen)
    assert len(replies) == 3 and all(isinstance(r.text, str) for r in replies)
    assert all(1 <= r.completion_tokens <= 4 for r in replies)
    assert replies[1].prompt_tokens > replies[0].prompt_tokens > 0  # padding is not counted


def test_unparseable_random_replies_fall_back_to_the_local_label(tiny_llama):
    backend = HFBackend(tiny_llama, temperature=0.0, max_tokens=3, batch_size=2)
    linker = Linker(backend, PromptBuilder(DATASETS["conll03"]), threshold=0.4, max_attempts=2)
    linked = list(linker.link_records([record(0), record(1)]))
    asked = [s for rec in linked for s in rec["entity"] if s["uncertainty"] > 0.4]
    assert all(parse_answer(s["llm_raw"], DATASETS["conll03"]) is None for s in asked)
    assert [(s["llm_status"], s["llm_pred"]) for s in asked] == [("unparseable", "O"), ("unparseable", "ORG")] * 2
    summary = linker.summary()
    assert (summary["asked"], summary["unparseable"], summary["requests"]) == (4, 4, 4 * 2)


# -- choice mode on an OpenAI-compatible server: structured output, or the free fallback --------

OPTIONS = DATASETS["conll03"].option_names()
ANSWERS = {"German": "Miscellaneous", "EU": "Organization"}


def server_answer(prompt):
    return ANSWERS.get(entity_of(prompt), "Non-entity")


def link_through(server, options=OPTIONS):
    backend = OpenAIBackend(model="m", base_url=server.base_url, timeout=5, options=options)
    linker = Linker(backend, PromptBuilder(DATASETS["conll03"]), threshold=0.4, max_attempts=2, concurrency=2)
    return linker, [s for rec in linker.link_records([record(0), record(1)]) for s in rec["entity"]
                    if s["uncertainty"] > 0.4]


def test_structured_output_asks_for_an_enum_of_the_options(capsys):
    with LLMServer(answer=server_answer, structured="honour") as server:
        linker, asked = link_through(server)
    schema = server.formats[0]["json_schema"]["schema"]
    assert server.formats[0]["type"] == "json_schema" and schema["required"] == ["answer"]
    assert schema["properties"]["answer"]["enum"] == OPTIONS and len(server.formats) == 4
    assert [(s["llm_status"], s["llm_pred"], s["llm_probs"]) for s in asked] == \
        [("linked", "MISC", {"MISC": 1.0}), ("linked", "ORG", {"ORG": 1.0})] * 2
    assert json.loads(asked[0]["llm_raw"]) == {"answer": "Miscellaneous"}
    err = capsys.readouterr().err  # no log-probabilities from this server: told once, answers one-hot
    assert err.count("warning") == 1 and "no log-probabilities" in err


NAMES = dict(DATASETS["conll03"].options)  # tag -> option name


def scripted(distribution):
    """A server distribution per prompt: `distribution` for EU, all on the answer for German."""
    return lambda prompt: distribution if entity_of(prompt) == "EU" else {"Miscellaneous": 1.0}


@pytest.mark.parametrize("distribution, expected", [
    # present: every option among the top alternatives
    ({"Organization": 0.6, "Location": 0.25, "Person": 0.1, "Miscellaneous": 0.04, "Non-entity": 0.01},
     {"ORG": 0.6, "LOC": 0.25, "PER": 0.1, "MISC": 0.04, "O": 0.01}),
    # partial: two options in the top alternatives, renormalised over them, the others 0
    ({"Organization": 0.6, "Location": 0.2}, {"ORG": 0.75, "LOC": 0.25, "PER": 0.0, "MISC": 0.0, "O": 0.0}),
])
def test_server_log_probabilities_become_the_options_distribution(distribution, expected, capsys):
    with LLMServer(answer=server_answer, structured="honour", logprobs=scripted(distribution)) as server:
        linker, asked = link_through(server)
    eu = [s for s in asked if s["entity"] == "EU"]
    assert eu and all(s["llm_answer"] == "ORG" for s in eu)
    for span in eu:
        assert span["llm_probs"].keys() == expected.keys()
        assert all(abs(span["llm_probs"][k] - v) < 1e-9 for k, v in expected.items())
    assert "warning" not in capsys.readouterr().err
    assert linker.backend.identity()["top_logprobs"] > 0  # the cache key knows replies carry them


def test_log_probabilities_that_name_no_option_fall_back_to_the_answer(capsys):
    with LLMServer(answer=server_answer, structured="honour", logprobs=lambda prompt: {"Zebra": 1.0}) as server:
        linker, asked = link_through(server)
    assert all(sum(s["llm_probs"].values()) == 1.0 and s["llm_probs"][s["llm_answer"]] == 1.0 for s in asked)
    assert capsys.readouterr().err.count("no log-probabilities") == 1


def test_a_server_that_rejects_structured_output_is_asked_free_and_told_once(capsys):
    with LLMServer(answer=server_answer, structured="reject") as server:
        linker, asked = link_through(server)
    err = capsys.readouterr().err
    assert err.count("rejected structured output") == 1 and "HTTP 400" in err
    assert [(s["llm_status"], s["llm_pred"], s["llm_raw"]) for s in asked] == \
        [("linked", "MISC", "Miscellaneous"), ("linked", "ORG", "Organization")] * 2
    assert all("llm_probs" not in s for s in asked)
    # rejected at most twice per thread: first without logprobs, then without response_format
    assert server.formats.count(None) == 4 and 1 <= len(server.formats) - 4 <= 4


def test_a_server_that_ignores_structured_output_is_parsed_free_and_told_once(capsys):
    answers = {"German": "Answer: Miscellaneous", "EU": "I cannot tell"}
    with LLMServer(answer=lambda p: answers[entity_of(p)], structured="ignore") as server:
        linker, asked = link_through(server)
    assert capsys.readouterr().err.count("ignored the structured-output request") == 1
    assert [(s["llm_status"], s["llm_pred"]) for s in asked] == [("linked", "MISC"), ("unparseable", "ORG")] * 2
    assert all(f is not None for f in server.formats)  # still asked: a later reply may be structured


def test_free_generation_has_a_default_reply_cap_and_the_server_keys_the_cache(monkeypatch):
    from inference.llm.backends import DEFAULT_MAX_TOKENS, make_backend

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    a = make_backend(LinkSettings(save_file="o", llm_name="gpt", base_url="http://127.0.0.1:1/v1"))
    b = make_backend(LinkSettings(save_file="o", llm_name="gpt", base_url="http://127.0.0.1:2/v1"))
    assert a.max_tokens == DEFAULT_MAX_TOKENS and 0 < DEFAULT_MAX_TOKENS <= 256
    assert a.identity() != b.identity() and make_backend(LinkSettings(save_file="o", llm_name="gpt", base_url="http://127.0.0.1:1/v1")).identity() == a.identity()
