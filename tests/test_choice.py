"""`--answer_mode choice` on a local model: options scored with one prompt pass and one batched
pass over the options, on the tiny random Llama (conftest `tiny_llama`)."""
import json
import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from inference.llm.backends import HFBackend  # noqa: E402
from inference.llm.choice import OptionScorer  # noqa: E402
from inference.llm.linker import Linker  # noqa: E402
from inference.llm.prompt import DATASETS, PromptBuilder  # noqa: E402

SPEC = DATASETS["conll03"]


@pytest.fixture(scope="module")
def chooser(tiny_llama):
    return HFBackend(tiny_llama, batch_size=2, options=SPEC.option_names())


def brute_force(backend, chat, option):
    """log P(option's reply | chat) from one plain forward pass over prompt + reply, no cache."""
    tok = backend.tokenizer
    prefix = tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    full = tok.apply_chat_template(chat + [{"role": "assistant", "content": option}], tokenize=False)
    prompt = tok(prefix, add_special_tokens=False)["input_ids"]
    reply = tok(full[len(prefix):], add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = backend.model(input_ids=torch.tensor([prompt + reply])).logits[0].log_softmax(-1)
    return sum(logits[len(prompt) + i - 1, t].item() for i, t in enumerate(reply))


def test_scores_equal_a_plain_forward_pass_and_take_two_passes(chooser):
    calls = []
    hook = chooser.model.register_forward_hook(lambda module, args, kwargs, out: calls.append(1), with_kwargs=True)
    chat = chooser.chat("the cat sat on a mat . Select the entity type of cat")
    try:
        scored = chooser.scorer.score(chat)
    finally:
        hook.remove()
    assert len(calls) == 2  # the prompt once, then every option in one batch
    expected = [brute_force(chooser, chat, option) for option in SPEC.option_names()]
    assert scored.logprobs == pytest.approx(expected, abs=1e-4)
    assert math.fsum(scored.probs) == pytest.approx(1.0)
    assert scored.probs == pytest.approx(torch.tensor(expected).softmax(-1).tolist(), abs=1e-5)
    assert scored.option_tokens > len(SPEC.option_names())  # end-of-turn tokens are scored too


def record(i):
    return {"id": i, "sentence": f"the cat sat on a mat {i}",
            "entity": [{"entity": "cat", "span": [1, 1], "pred": "O", "uncertainty": 0.6},
                       {"entity": "mat", "span": [5, 5], "pred": "LOC", "uncertainty": 0.9},
                       {"entity": "the", "span": [0, 0], "pred": "O", "uncertainty": 0.1}]}


def test_every_span_gets_an_option_with_probabilities(chooser):
    linker = Linker(chooser, PromptBuilder(SPEC), threshold=0.4, max_attempts=5)
    linked = list(linker.link_records([record(0), record(1)]))
    asked = [s for rec in linked for s in rec["entity"] if s["uncertainty"] > 0.4]
    assert len(asked) == 4
    for span in asked:
        assert span["llm_status"] == "linked"
        probs = span["llm_probs"]
        assert set(probs) == {"LOC", "PER", "ORG", "MISC", "O"}
        assert math.fsum(probs.values()) == pytest.approx(1.0)
        assert span["llm_answer"] == max(probs, key=probs.get) == span["llm_pred"]
        assert json.loads(span["llm_raw"])["answer"] in SPEC.option_names()
    summary = linker.summary()
    assert (summary["requests"], summary["unparseable"]) == (4, 0)  # one request per span, no retries
    assert summary["prompt_tokens"] > 0 and summary["completion_tokens"] > 0


def test_choice_and_free_replies_are_cached_apart(chooser, tiny_llama):
    free = HFBackend(tiny_llama, batch_size=2)
    assert chooser.identity() != free.identity() and chooser.identity()["choice"][-1] == "Non-entity"


def test_the_shared_prompt_start_is_run_once_and_scores_as_a_whole_prompt(tiny_llama, chooser):
    """Prompts sharing the label descriptions: after the first two, each runs only its own end on
    the cached start, and every option's log-likelihood equals a plain forward pass's."""
    builder = PromptBuilder(SPEC)
    words = "Peter met Anna in Berlin on Monday".split()
    rec = {"sentence": " ".join(words), "tokens": words, "entity": []}
    chats = [chooser.chat(builder.build(rec, {"span": [i, i], "entity": w, "pred": "O", "uncertainty": 1.0}))
             for i, w in enumerate(words)]
    scorer = OptionScorer(chooser.model, chooser.tokenizer, SPEC.option_names())
    ends = []  # prompt passes that ran on the cached start: a cache given, no options' attention mask
    hook = chooser.model.register_forward_hook(
        lambda module, args, kwargs, out: ends.append(kwargs["input_ids"].shape[1])
        if kwargs.get("cache") is not None and kwargs.get("attention_mask") is None else None, with_kwargs=True)
    try:
        scored = [scorer.score(chat) for chat in chats]
    finally:
        hook.remove()
    assert scorer._prefix is not None and scorer._prefix.shape[1] > 100  # the descriptions' tokens
    # most later prompts run only their own end (a tokenizer may merge a span's word into the shared start)
    assert len(ends) >= 3 and max(ends) < 20
    for chat, s in zip(chats, scored):
        for option, logp in zip(SPEC.option_names(), s.logprobs):
            assert logp == pytest.approx(brute_force(chooser, chat, option), abs=1e-3)
