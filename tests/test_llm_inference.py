import json
import os
import signal
import subprocess
import sys

import pytest

import llm_inference
from inference.llm.session import read_records, resolve_spec
from inference.llm.settings import LinkSettings
from tests.helpers import no_real_openai, wait_for  # noqa: F401 (autouse fixture)
from utils.errors import DataError
from inference.reports.metrics import entity_scores
from inference.llm.loopback_server import LLMServer, entity_of

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ANSWERS = {"German": "Miscellaneous", "Brussels": "Location", "Peter": "Person", "Smith": "Non-entity"}


def answer(prompt):
    return ANSWERS.get(entity_of(prompt), "Non-entity")


def span(entity, s, pred, uncertainty, gold):
    return {"entity": entity, "span": [s, s], "pred": pred, "confidence": round(1 - uncertainty, 2),
            "uncertainty": uncertainty, "candidate": pred == "O", "answer": gold}


def write_input(tmp_path, n=6, labels=("O", "LOC", "MISC", "ORG", "PER")):
    """n records with four spans each: below threshold, a candidate, an entity to type, one to remove."""
    path = tmp_path / "local.jsonl"
    lines = []
    for i in range(n):
        words = f"EU{i} rejects German call Peter Brussels Smith".split()
        lines.append({"id": i, "sentence": " ".join(words), "tokens": words,
                      "entity": [span(words[0], 0, "ORG", 0.05, "ORG"), span("German", 2, "O", 0.5, "MISC"),
                                 span("Peter", 4, "LOC", 0.7, "PER"), span("Brussels", 5, "LOC", 0.2, "LOC"),
                                 span("Smith", 6, "PER", 0.9, "O")],
                      "gold": [[0, 0, "ORG"], [2, 2, "MISC"], [4, 4, "PER"], [5, 5, "LOC"], [3, 3, "MISC"]]})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    if labels:
        (tmp_path / "local.jsonl.metrics.json").write_text(json.dumps({"f1": 0.5, "labels": list(labels)}))
    return str(path)


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_links_a_file_keeps_every_field_and_scores_it(tmp_path, server_answering=answer):
    input_file, save = write_input(tmp_path), str(tmp_path / "out" / "linked.jsonl")
    with LLMServer(answer=server_answering) as server:
        metrics = llm_inference.main(["--input_file", input_file, "--save_file", save, "--dataname", "conll03",
                                      "--base_url", server.base_url, "--concurrency", "4"])
    assert len(server.prompts) == 6 * 3  # German, Peter, Smith in each record
    inputs, linked = read_jsonl(input_file), read_jsonl(save)
    assert [rec["id"] for rec in linked] == list(range(6))
    for rec, src in zip(linked, inputs):
        assert {k: v for k, v in rec.items() if k != "entity"} == {k: v for k, v in src.items() if k != "entity"}
        for out, original in zip(rec["entity"], src["entity"]):
            assert out.items() >= original.items() and {"llm_pred", "llm_raw", "llm_status"} <= out.keys()
    assert [s["llm_pred"] for s in linked[0]["entity"]] == ["ORG", "MISC", "PER", "LOC", "O"]
    on_disk = json.loads(open(save + ".metrics.json").read())
    assert on_disk["linked"] == metrics["linked"]
    golds = [rec["gold"] for rec in linked]
    relinked = entity_scores([[(*s["span"], s["llm_pred"]) for s in rec["entity"]] for rec in linked], golds)
    local = entity_scores([[(*s["span"], s["pred"]) for s in rec["entity"]] for rec in linked], golds)
    assert on_disk["linked"]["f1"] == pytest.approx(relinked["f1"])
    assert on_disk["local"]["f1"] == pytest.approx(local["f1"])
    assert on_disk["linked"]["f1"] > on_disk["local"]["f1"]
    assert (on_disk["fixed"], on_disk["removed"], on_disk["recovered"], on_disk["never_listed"]) == (18, 6, 6, 6)
    assert on_disk["llm"]["requests"] == 18 and on_disk["llm"]["wall_s"] > 0
    assert os.path.isfile(str(tmp_path / "out" / "llm_cache.jsonl"))


def test_sweep_asks_once_at_the_lowest_threshold_and_plots(tmp_path):
    input_file, save = write_input(tmp_path, n=2), str(tmp_path / "linked.jsonl")
    with LLMServer(answer=answer) as server:
        metrics = llm_inference.main(["--input_file", input_file, "--save_file", save, "--dataname", "conll03",
                                      "--base_url", server.base_url, "--threshold", "0.6",
                                      "--threshold_sweep", "0.1,0.3,0.6,0.8", "--plot_dir", str(tmp_path / "plots")])
    assert len(server.prompts) == 2 * 4  # every span above 0.1, each once
    assert [row["sent"] for row in metrics["sweep"]] == [8, 6, 4, 2]
    assert metrics["threshold"] == 0.6 and metrics["sent"] == 4
    assert [s["llm_pred"] for s in read_jsonl(save)[0]["entity"]] == ["ORG", "O", "PER", "LOC", "O"]
    with open(metrics["plot"], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_choice_mode_links_with_structured_answers(tmp_path):
    input_file, save = write_input(tmp_path, n=2), str(tmp_path / "linked.jsonl")
    with LLMServer(answer=answer, structured="honour") as server:
        metrics = llm_inference.main(["--input_file", input_file, "--save_file", save, "--dataname", "conll03",
                                      "--base_url", server.base_url, "--answer_mode", "choice"])
    assert all(f["json_schema"]["schema"]["properties"]["answer"]["enum"][-1] == "Non-entity" for f in server.formats)
    asked = [s for rec in read_jsonl(save) for s in rec["entity"] if s["uncertainty"] > 0.4]
    assert [s["llm_pred"] for s in asked] == ["MISC", "PER", "O"] * 2
    assert all(s["llm_status"] == "linked" and sum(s["llm_probs"].values()) == 1 for s in asked)
    assert metrics["llm"]["backend"]["choice"][0] == "Location" and metrics["llm"]["unparseable"] == 0


def test_dry_run_writes_the_prompts_and_calls_nothing(tmp_path, capsys):
    input_file, save = write_input(tmp_path, n=3), str(tmp_path / "linked.jsonl")
    llm_inference.main(["--input_file", input_file, "--save_file", save, "--dataname", "conll03", "--dry_run"])
    prompts = read_jsonl(str(tmp_path / "linked.prompts.jsonl"))
    assert [(p["id"], p["span"]) for p in prompts] == [(i, [s, s]) for i in range(3) for s in (2, 4, 6)]
    assert all(p["prompt"].endswith("\n Non-entity\nAnswer:") for p in prompts)
    out = capsys.readouterr().out
    assert f"{len(prompts)} prompts, {sum(len(p['prompt']) for p in prompts)} characters" in out
    assert not os.path.exists(save)


@pytest.mark.parametrize("llm", [["--llm_name", "gpt"], ["--llm_name", "qwen"]])
def test_no_llm_configured_says_so_and_suggests_dry_run(tmp_path, llm):
    input_file = write_input(tmp_path, n=1)
    with pytest.raises(SystemExit) as exit_:
        llm_inference.main(["--input_file", input_file, "--save_file", str(tmp_path / "x.jsonl"), *llm])
    assert "no LLM configured" in str(exit_.value) and "--dry_run" in str(exit_.value)


def test_a_partial_output_is_continued(tmp_path):
    input_file, save = write_input(tmp_path), str(tmp_path / "linked.jsonl")
    args = ["--input_file", input_file, "--save_file", save, "--dataname", "conll03", "--no_cache"]
    with LLMServer(answer=answer) as server:
        llm_inference.main(args + ["--base_url", server.base_url])
    full = open(save).read().splitlines(keepends=True)
    with open(save, "w") as f:
        f.write("".join(full[:2]) + full[2][:40])  # two records done, the third cut off
    with LLMServer(answer=answer) as server, pytest.warns(UserWarning, match="partial last line"):
        llm_inference.main(args + ["--base_url", server.base_url])
    assert len(server.prompts) == 4 * 3
    assert open(save).read().splitlines(keepends=True) == full


def test_an_output_of_another_input_is_refused(tmp_path):
    input_file, save = write_input(tmp_path, n=2), tmp_path / "linked.jsonl"
    save.write_text(json.dumps({"id": 7, "entity": []}) + "\n")
    with pytest.raises(SystemExit, match="error: .*line 1 \\(id 7\\) is not record 1 of"):
        llm_inference.main(["--input_file", input_file, "--save_file", str(save), "--base_url", "http://127.0.0.1:9"])


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_a_killed_run_restarts_without_asking_any_span_twice(tmp_path, sig):
    input_file, save = write_input(tmp_path, n=8), str(tmp_path / "linked.jsonl")
    cache, log = tmp_path / "llm_cache.jsonl", tmp_path / "first_run.log"
    with LLMServer(answer=answer, latency=0.02) as server:
        args = ["--input_file", input_file, "--save_file", save, "--dataname", "conll03",
                "--base_url", server.base_url, "--concurrency", "3"]
        server.hold_after(10)  # answer 10 spans, then hold the next ones
        env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
        with open(log, "w") as err:
            proc = subprocess.Popen([sys.executable, "llm_inference.py", *args], cwd=ROOT, env=env,
                                    stdout=subprocess.DEVNULL, stderr=err)
        try:
            def killable():
                assert proc.poll() is None, log.read_text()
                return len(server.prompts) == 13 and cache.exists() and len(cache.read_text().splitlines()) == 10
            wait_for(killable, seconds=30)
            proc.send_signal(sig)
            if sig == signal.SIGINT:  # Ctrl-C waits for the 3 requests in flight and keeps their replies
                server.release()
            proc.wait(timeout=20)
        finally:
            proc.kill()
        server.release()
        if sig == signal.SIGINT:  # every reply the server sent before the process stopped was kept
            assert "interrupted" in log.read_text()
            assert len(cache.read_text().splitlines()) == sum(server.answered.values()) >= 13
        llm_inference.main(args)
    assert max(server.answered.values()) == 1
    assert sum(server.answered.values()) == 8 * 3
    assert [rec["id"] for rec in read_jsonl(save)] == list(range(8))


def test_the_key_appears_in_no_message_log_or_file(tmp_path, monkeypatch, capsys):
    secret = "sk-test-DO-NOT-LEAK-7f3a9c"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    input_file, save = write_input(tmp_path, n=3), str(tmp_path / "linked.jsonl")
    with LLMServer(answer=answer, api_key="sk-the-right-key") as server:
        with pytest.raises(SystemExit) as exit_:
            llm_inference.main(["--input_file", input_file, "--save_file", save, "--base_url", server.base_url])
    message = str(exit_.value)
    assert "HTTP 401" in message and "Incorrect API key provided: ***" in message
    captured = capsys.readouterr()
    assert secret not in message + captured.out + captured.err
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(errors="replace"), path


def args_for(tmp_path, *extra):
    return LinkSettings.from_args(llm_inference.parse_args(["--input_file", str(tmp_path / "local.jsonl"),
                                                            "--save_file", str(tmp_path / "o.jsonl"), *extra]))


def test_label_set_priority(tmp_path):
    input_file = write_input(tmp_path, n=1, labels=("O", "PER", "LOC", "ORG", "MISC", "DATE"))
    records = read_records(input_file)
    (tmp_path / "labels.txt").write_text("O\nGENE\nPROTEIN\n")
    resolve = resolve_spec
    assert resolve(args_for(tmp_path, "--labels", "A,B", "--dataname", "conll03"), records).tags == ["A", "B"]
    assert resolve(args_for(tmp_path, "--labels", str(tmp_path / "labels.txt")), records).tags == ["GENE", "PROTEIN"]
    with pytest.warns(UserWarning, match="DATE"):
        assert resolve(args_for(tmp_path, "--dataname", "conll03"), records).tags == ["LOC", "PER", "ORG", "MISC"]
    assert resolve(args_for(tmp_path), records).tags == ["PER", "LOC", "ORG", "MISC", "DATE"]
    os.remove(input_file + ".metrics.json")
    assert resolve(args_for(tmp_path), records).tags == ["LOC", "MISC", "ORG", "PER"]
    desc = tmp_path / "desc.json"
    desc.write_text(json.dumps({"LOC": "places on a map."}))
    spec = resolve(args_for(tmp_path, "--dataname", "conll03", "--label_desc", str(desc)), records)
    assert "Location: places on a map." in spec.description


@pytest.mark.parametrize("line, message", [
    ("{not json", "line 2: malformed JSON"),
    (json.dumps({"id": 1, "sentence": "a b", "entity": [{"entity": "a", "span": [0, 0], "pred": "O"}]}),
     "line 2: span 0 lacks uncertainty"),
    (json.dumps({"id": 1, "entity": []}), "line 2: expected an object with 'sentence'"),
])
def test_bad_input_lines_are_named(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"id": 0, "sentence": "a", "entity": []}) + "\n" + line + "\n")
    with pytest.raises(DataError, match=f"bad.jsonl: {message}"):
        read_records(str(path))


def test_shot_needs_a_file(tmp_path, capsys):
    with pytest.raises(SystemExit):
        args_for(tmp_path, "--shot", "1")
    assert "--shot needs --selectShot_dir" in capsys.readouterr().err
