import pytest

from inference.llm.linker import Linker
from inference.llm.backends import FatalError, OpenAIBackend
from inference.llm.cache import ReplyCache
from inference.llm.prompt import DATASETS, PromptBuilder
from tests.helpers import no_real_openai  # noqa: F401 (autouse fixture)
from tests.support.loopback_server import Drop, Fail, Garbage, LLMServer, Reply, entity_of

ANSWERS = {"German": "Miscellaneous", "Brussels": "Answer: Location", "Peter": "Non-entity", "EU": "Organization"}


def span(entity, s, e, pred, uncertainty):
    return {"entity": entity, "span": [s, e], "pred": pred, "uncertainty": uncertainty, "candidate": pred == "O"}


def records():
    return [
        {"id": 0, "sentence": "EU rejects German call", "foo": "kept",
         "entity": [span("EU", 0, 0, "ORG", 0.1), span("German", 2, 2, "O", 0.45)],
         "gold": [[0, 0, "ORG"], [2, 2, "MISC"]]},
        {"id": 1, "sentence": "Peter met him in Brussels",
         "entity": [span("Peter", 0, 0, "PER", 0.6), span("Brussels", 4, 4, "ORG", 0.9)],
         "gold": [[0, 0, "PER"], [4, 4, "LOC"]]},
    ]


def answer(prompt):
    return ANSWERS.get(entity_of(prompt), "Non-entity")


def linker_for(server, cache=None, timeout=2.0, **kw):
    backend = OpenAIBackend(model="test-model", base_url=server.base_url, timeout=timeout)
    return Linker(backend, PromptBuilder(DATASETS["conll03"]), cache, backoff=0.01, **kw)


def by_entity(linked):
    return {s["entity"]: s for rec in linked for s in rec["entity"]}


def test_uncertain_spans_are_relabelled_and_everything_else_kept():
    inputs = records()
    with LLMServer(answer=answer) as server:
        linker = linker_for(server, threshold=0.4)
        linked = list(linker.link_records(inputs))
    assert inputs == records()  # the input is not modified
    assert sorted(entity_of(p) for p in server.prompts) == ["Brussels", "German", "Peter"]
    spans = by_entity(linked)
    eu = spans["EU"]
    assert (eu["llm_status"], eu["llm_pred"], eu["llm_raw"]) == ("below_threshold", "ORG", None)
    assert (spans["German"]["llm_pred"], spans["German"]["llm_raw"]) == ("MISC", "Miscellaneous")  # candidate typed
    assert spans["Peter"]["llm_pred"] == "O"  # entity removed
    assert (spans["Brussels"]["llm_pred"], spans["Brussels"]["llm_status"]) == ("LOC", "linked")
    assert linked[0]["foo"] == "kept" and linked[1]["gold"] == records()[1]["gold"]
    for rec, original in zip(linked, records()):
        for out, src in zip(rec["entity"], original["entity"]):
            assert out.items() >= src.items()
    summary = linker.summary()
    assert {k: summary[k] for k in ("spans", "asked", "linked", "changed", "requests")} == \
        {"spans": 4, "asked": 3, "linked": 3, "changed": 3, "requests": 3}
    assert summary["prompt_tokens"] > 0 and summary["completion_tokens"] == 1 + 2 + 1


def test_unparseable_replies_are_asked_again_then_the_local_label_kept():
    with LLMServer(answer=lambda p: "Hmm, hard to say") as server:
        linker = linker_for(server, threshold=0.4, max_attempts=3)
        rec = linker.link_record(records()[1])
    assert len(server.prompts) == 2 * 3
    assert [(s["llm_status"], s["llm_pred"], s["llm_raw"]) for s in rec["entity"]] == \
        [("unparseable", "PER", "Hmm, hard to say"), ("unparseable", "ORG", "Hmm, hard to say")]
    assert linker.summary()["unparseable"] == 2


def test_a_parseable_retry_is_used():
    with LLMServer(answer=answer, script=[Reply("no idea")]) as server:
        rec = linker_for(server, threshold=0.8).link_record(records()[1])
    assert len(server.prompts) == 2
    assert (rec["entity"][1]["llm_pred"], rec["entity"][1]["llm_raw"]) == ("LOC", "Answer: Location")


def test_transient_errors_are_retried():
    script = [Fail(500), Drop(), Garbage(), Garbage(b'{"object": "nothing"}', "application/json"),
              Reply("Location", delay=1.5)]
    with LLMServer(answer=answer, script=script) as server:
        linker = linker_for(server, threshold=0.8, timeout=0.5, max_attempts=6)
        rec = linker.link_record(records()[1])
    assert len(server.prompts) == 6
    assert server.answered[server.prompts[-1]] == 1  # the slow reply was never delivered
    assert (rec["entity"][1]["llm_pred"], rec["entity"][1]["llm_status"]) == ("LOC", "linked")
    assert linker.summary()["transient_errors"] == 5


def test_429_waits_as_long_as_retry_after_says():
    with LLMServer(answer=answer, script=[Fail(429, retry_after=0.4)]) as server:
        linker_for(server, threshold=0.8).link_record(records()[1])
    assert len(server.times) == 2
    assert server.times[1] - server.times[0] >= 0.35  # the backoff alone would be ~0.01 s


def test_a_span_whose_attempts_all_fail_keeps_its_label(tmp_path):
    with LLMServer(answer=answer, script=[Fail(503)] * 3) as server, \
            ReplyCache(str(tmp_path / "cache.jsonl")) as cache:
        linker = linker_for(server, cache, threshold=0.8, max_attempts=3)
        rec = linker.link_record(records()[1])
    brussels = rec["entity"][1]
    assert (brussels["llm_status"], brussels["llm_pred"], brussels["llm_raw"]) == ("failed", "ORG", None)
    assert "HTTP 503" in brussels["llm_error"]
    assert len(cache) == 0 and linker.summary()["failed"] == 1


@pytest.mark.parametrize("status", [400, 404])
def test_other_client_errors_stop_the_run(status):
    with LLMServer(answer=answer, script=[Fail(status, message="model 'x' does not exist")]) as server:
        with pytest.raises(FatalError, match=f"HTTP {status}.*does not exist"):
            list(linker_for(server, threshold=0.4, concurrency=1).link_records(records()))
    assert len(server.prompts) == 1


def test_a_bad_key_stops_the_run_without_showing_the_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-THE-SECRET-0042")
    with LLMServer(answer=answer, api_key="sk-the-right-one") as server:
        with pytest.raises(FatalError) as err:
            list(linker_for(server, threshold=0.4, concurrency=2).link_records(records() * 10))
    assert "HTTP 401" in str(err.value) and "Incorrect API key" in str(err.value)
    assert "THE-SECRET" not in str(err.value)
    assert len(server.prompts) <= 2 + 2  # at most the requests in flight when the first 401 came


def test_requests_overlap_and_records_come_out_in_input_order():
    many = [{"id": i, "sentence": f"word{i} in Brussels", "entity": [span("Brussels", 2, 2, "ORG", 0.9)]}
            for i in range(16)]
    with LLMServer(answer=answer, latency=0.1, script=[Reply("Location", delay=0.3)]) as server:
        linked = list(linker_for(server, concurrency=8).link_records(many))
    assert server.max_in_flight > 1
    assert [rec["id"] for rec in linked] == list(range(16))
    assert {rec["entity"][0]["llm_pred"] for rec in linked} == {"LOC"}


def test_records_stream_out_before_the_input_ends():
    pulled = []

    def source():
        for i in range(30):
            pulled.append(i)
            yield {"id": i, "sentence": f"w{i} Brussels", "entity": [span("Brussels", 1, 1, "ORG", 0.9)]}

    with LLMServer(answer=answer) as server:
        stream = linker_for(server, concurrency=2, lookahead=4).link_records(source())
        first = next(stream)
        assert first["id"] == 0 and len(pulled) < 10
        assert [rec["id"] for rec in stream] == list(range(1, 30))


def test_the_cache_answers_a_second_run_and_a_lower_threshold_asks_only_the_rest(tmp_path):
    path = str(tmp_path / "cache.jsonl")
    with LLMServer(answer=answer) as server:
        with ReplyCache(path) as cache:
            first = list(linker_for(server, cache, threshold=0.5).link_records(records()))
        assert len(server.prompts) == 2
        with ReplyCache(path) as cache:
            linker = linker_for(server, cache, threshold=0.5)
            second = list(linker.link_records(records()))
        assert len(server.prompts) == 2
        assert [s["llm_pred"] for s in by_entity(second).values()] == \
            [s["llm_pred"] for s in by_entity(first).values()]
        assert by_entity(second)["Brussels"]["llm_status"] == "cached"
        assert linker.summary()["cached"] == 2 and linker.summary()["requests"] == 0
        with ReplyCache(path) as cache:
            lower = list(linker_for(server, cache, threshold=0.4).link_records(records()))
        assert [entity_of(p) for p in server.prompts[2:]] == ["German"]
    assert by_entity(lower)["German"]["llm_pred"] == "MISC"


def test_cached_unparseable_replies_are_replayed_before_asking_more(tmp_path):
    path = str(tmp_path / "cache.jsonl")
    with LLMServer(answer=answer, script=[Reply("???")]) as server:
        with ReplyCache(path) as cache:
            rec = linker_for(server, cache, threshold=0.8, max_attempts=1).link_record(records()[1])
        assert rec["entity"][1]["llm_status"] == "unparseable"
        with ReplyCache(path) as cache:
            linker = linker_for(server, cache, threshold=0.8, max_attempts=2)
            rec = linker.link_record(records()[1])
    assert len(server.prompts) == 2  # one reply cached, one new
    assert (rec["entity"][1]["llm_pred"], rec["entity"][1]["llm_status"]) == ("LOC", "linked")
    assert linker.summary()["cache_replies"] == 1


def test_a_lower_ask_threshold_asks_more_but_decides_at_the_threshold():
    with LLMServer(answer=answer) as server:
        linked = list(linker_for(server, threshold=0.5, ask_threshold=0.3).link_records(records()))
    german = by_entity(linked)["German"]
    assert (german["llm_answer"], german["llm_pred"]) == ("MISC", "O")
    with pytest.raises(ValueError, match="above threshold"):
        linker_for(server, threshold=0.3, ask_threshold=0.5)

