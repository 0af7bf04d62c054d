import json
import os
import signal
import subprocess
import sys

import pytest

import llm_inference
from inference.llm.labels import resolve_spec
from inference.records import read_records
from inference.llm.settings import LinkSettings
from tests.helpers import ctrl_c_works, no_real_openai, to_bio, wait_for  # noqa: F401 (autouse fixture)
from utils.errors import DataError
from seqeval.metrics import f1_score, precision_score, recall_score
from tests.support.loopback_server import Fail, LLMServer, Reply, entity_of

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
    # seqeval on BIO tags as the reference; by hand: linked 4 right of 4 (5 gold), local 2 of 4
    y_true = [to_bio(rec["gold"], len(rec["tokens"])) for rec in linked]
    for key, stage, (precision, recall) in (("llm_pred", "linked", (1.0, 0.8)), ("pred", "local", (0.5, 0.4))):
        y_pred = [to_bio([(*s["span"], s[key]) for s in rec["entity"] if s[key] != "O"], len(rec["tokens"]))
                  for rec in linked]
        assert (on_disk[stage]["precision"], on_disk[stage]["recall"]) == pytest.approx((precision, recall))
        assert (on_disk[stage]["precision"], on_disk[stage]["recall"], on_disk[stage]["f1"]) == pytest.approx(
            (precision_score(y_true, y_pred), recall_score(y_true, y_pred), f1_score(y_true, y_pred)))
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
    message = str(exit_.value)
    assert message.startswith("error: no LLM configured") and "--dry_run" in message and "\n" not in message


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
    args = ["--input_file", input_file, "--save_file", str(save), "--dataname", "conll03"]
    with LLMServer(answer=answer) as server:
        llm_inference.main(args + ["--base_url", server.base_url])
    records = read_jsonl(input_file)  # the same file now holds other records
    with open(input_file, "w") as f:
        f.write("".join(json.dumps({**rec, "id": rec["id"] + 7}) + "\n" for rec in records))
    with pytest.raises(SystemExit, match="error: .*line 1 \\(id 0\\) is not record 1 of"):
        llm_inference.main(args + ["--base_url", "http://127.0.0.1:9"])
    foreign = tmp_path / "notes.jsonl"  # not written by llm_inference.py: left alone
    foreign.write_text(json.dumps({"id": 7, "entity": []}) + "\n")
    with pytest.raises(SystemExit, match="error: .*notes.jsonl: exists and is not known to be this program's output"):
        llm_inference.main(["--input_file", input_file, "--save_file", str(foreign), "--base_url", "http://127.0.0.1:9"])
    assert foreign.read_text() == json.dumps({"id": 7, "entity": []}) + "\n"


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
                                    stdout=subprocess.DEVNULL, stderr=err, preexec_fn=ctrl_c_works)
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


# -- reruns, exit codes and outputs, through the real command in a subprocess --------------

def llm_cli(*args, stdin=None, timeout=60):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    return subprocess.run([sys.executable, "llm_inference.py", *args], cwd=ROOT, env=env, input=stdin,
                          capture_output=True, text=True, timeout=timeout)


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_server_down_then_up_fails_with_status_3_then_a_rerun_answers_every_span(tmp_path):
    input_file, save = write_input(tmp_path), str(tmp_path / "linked.jsonl")
    port = free_port()
    args = ["--input_file", input_file, "--save_file", save, "--dataname", "conll03", "--max_attempts", "1",
            "--base_url", f"http://127.0.0.1:{port}/v1"]
    down = llm_cli(*args)
    assert down.returncode == 3, down.stderr
    last = down.stderr.strip().splitlines()[-1]
    assert last.startswith("error: 18 spans failed") and "python llm_inference.py --input_file" in last
    metrics = json.loads(open(save + ".metrics.json").read())
    assert metrics["llm"]["failed"] == 18 and metrics["llm"]["requests"] == 18
    assert metrics["linked"] == metrics["local"]  # nothing was linked, and nothing claims otherwise
    with LLMServer(answer=answer, port=port) as server:
        up = llm_cli(*args)
    assert up.returncode == 0, up.stderr
    assert len(server.prompts) == 18
    linked = read_jsonl(save)
    assert [rec["id"] for rec in linked] == list(range(6))
    assert {s["llm_status"] for rec in linked for s in rec["entity"]} == {"below_threshold", "linked"}
    metrics = json.loads(open(save + ".metrics.json").read())
    assert (metrics["llm"]["failed"], metrics["llm"]["asked"], metrics["llm"]["spans"]) == (0, 18, 30)
    assert metrics["linked"]["f1"] > metrics["local"]["f1"]


def test_pending_spans_of_a_partial_output_are_asked_again_and_the_metrics_count_the_whole_output(tmp_path):
    input_file, save = write_input(tmp_path), str(tmp_path / "linked.jsonl")
    args = ["--input_file", input_file, "--save_file", save, "--dataname", "conll03", "--max_attempts", "1"]
    with LLMServer(answer=answer, script=[Fail(500)] * 2) as server:  # two spans fail
        with pytest.raises(SystemExit) as exit_:
            llm_inference.main(args + ["--base_url", server.base_url, "--concurrency", "1"])
        assert exit_.value.code == 3
        lines = open(save).read().splitlines(keepends=True)
        with open(save, "w") as f:
            f.write("".join(lines[:4]))  # and the run was killed after 4 records
        metrics = llm_inference.main(args + ["--base_url", server.base_url])
    assert len(server.prompts) == 18 + 2  # the 2 failed spans asked again; the rest replayed from the cache
    assert metrics["llm"]["asked"] == 18 and metrics["llm"]["failed"] == 0 and len(read_jsonl(save)) == 6
    assert metrics["llm"]["linked"] + metrics["llm"]["cached"] == 18


def test_an_unparseable_reply_is_not_final_a_rerun_asks_again(tmp_path):
    input_file, save = write_input(tmp_path, n=1), str(tmp_path / "linked.jsonl")
    args = ["--input_file", input_file, "--save_file", save, "--dataname", "conll03", "--max_attempts", "1",
            "--concurrency", "1"]
    with LLMServer(answer=answer, script=[Reply("I cannot tell.")]) as server:
        metrics = llm_inference.main(args + ["--base_url", server.base_url])
        assert metrics["llm"]["unparseable"] == 1
        metrics = llm_inference.main(args + ["--base_url", server.base_url])
    assert len(server.prompts) == 4 and metrics["llm"]["unparseable"] == 0
    assert all(s["llm_status"] in ("below_threshold", "linked", "cached") for s in read_jsonl(save)[0]["entity"])


def test_two_runs_on_one_output_the_second_refuses_naming_the_first(tmp_path):
    input_file, save = write_input(tmp_path), str(tmp_path / "linked.jsonl")
    with LLMServer(answer=answer) as server:
        server.hold_after(2)
        args = ["--input_file", input_file, "--save_file", save, "--dataname", "conll03", "--base_url", server.base_url]
        env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
        first = subprocess.Popen([sys.executable, "llm_inference.py", *args], cwd=ROOT, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: len(server.prompts) >= 3, seconds=60)
            with pytest.raises(SystemExit) as second:  # flock: another open file, even in this process
                llm_inference.main(args)
            assert second.value.code == (f"error: {save}: another run (PID {first.pid}) is writing it; wait for "
                                         "it to finish or choose another --save_file")
            server.release()
            assert first.wait(timeout=60) == 0
        finally:
            first.kill()
        assert max(server.answered.values()) == 1 and len(read_jsonl(save)) == 6
        assert llm_cli(*args).returncode == 0  # the lock went with the first run
    assert not os.path.exists(save + ".lock")


def test_a_rerun_with_other_settings_is_refused_or_for_a_threshold_recomputed_from_the_cache(tmp_path):
    input_file, save = write_input(tmp_path), str(tmp_path / "linked.jsonl")
    args = ["--input_file", input_file, "--save_file", save, "--dataname", "conll03"]
    with LLMServer(answer=answer) as server:
        url = ["--base_url", server.base_url]
        llm_inference.main(args + url + ["--threshold", "0.6"])  # asks Peter and Smith
        before = open(save).read()
        refused = llm_cli(*args, *url, "--threshold", "0.6", "--model", "other", "--temperature", "0")
        assert refused.returncode == 1 and refused.stderr == (
            f'error: {save} was written with other settings: model "gpt-3.5-turbo" (now "other"); temperature 0.3 (now 0.0). '
            "Rerun with --overwrite to start it afresh, or choose another --save_file\n")
        assert open(save).read() == before and len(server.prompts) == 12
        metrics = llm_inference.main(args + url + ["--threshold", "0.4"])  # German too, now
        assert len(server.prompts) == 12 + 6 and metrics["llm"]["cached"] == 12 and metrics["sent"] == 18
        assert [s["llm_pred"] for s in read_jsonl(save)[0]["entity"]] == ["ORG", "MISC", "PER", "LOC", "O"]
        metrics = llm_inference.main(args + url + ["--threshold", "0.8"])  # only Smith is above it
        assert len(server.prompts) == 18 and metrics["sent"] == 6 and metrics["llm"]["asked"] == 6
        assert [s["llm_pred"] for s in read_jsonl(save)[0]["entity"]] == ["ORG", "O", "LOC", "LOC", "O"]
        assert json.loads(open(save + ".metrics.json").read())["threshold"] == 0.8


@pytest.mark.parametrize("target", ["input", "cache", "html"])
def test_an_output_that_is_an_input_or_not_ours_is_refused_and_left_alone(tmp_path, target):
    input_file, save = write_input(tmp_path, n=2), str(tmp_path / "linked.jsonl")
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    flags = {"input": ["--save_file", input_file], "cache": ["--save_file", save, "--cache", str(notes)],
             "html": ["--save_file", save, "--html", input_file]}[target]
    before = {p: p.read_bytes() for p in tmp_path.iterdir()}
    run = llm_cli("--input_file", input_file, *flags, "--base_url", "http://127.0.0.1:9")
    assert run.returncode == 1 and run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert {"input": "is also the input (--input_file)", "cache": "notes.txt: exists and is not a reply cache",
            "html": "is also the input (--input_file)"}[target] in run.stderr
    assert all(p.read_bytes() == before[p] for p in before)


def test_a_huge_reply_is_capped_in_the_output_and_the_cache(tmp_path):
    input_file, save = write_input(tmp_path, n=1), str(tmp_path / "linked.jsonl")
    with LLMServer(answer=lambda prompt: "Location\n" + "x" * 2_000_000) as server:
        llm_inference.main(["--input_file", input_file, "--save_file", save, "--dataname", "conll03",
                            "--base_url", server.base_url])
    raws = [s["llm_raw"] for s in read_jsonl(save)[0]["entity"] if s["llm_raw"]]
    assert raws and all(len(raw) == 2000 for raw in raws)
    assert os.path.getsize(tmp_path / "llm_cache.jsonl") < 3 * 2200


def test_the_cache_does_not_replay_another_servers_replies(tmp_path):
    input_file = write_input(tmp_path, n=1)
    cache = str(tmp_path / "cache.jsonl")
    for reply in ("Location", "Person"):
        with LLMServer(answer=lambda prompt: reply) as server:
            llm_inference.main(["--input_file", input_file, "--save_file", str(tmp_path / f"{reply}.jsonl"),
                                "--dataname", "conll03", "--base_url", server.base_url, "--cache", cache])
        assert len(server.prompts) == 3
        assert {s["llm_answer"] for s in read_jsonl(str(tmp_path / f"{reply}.jsonl"))[0]["entity"]} >= {reply[:3].upper()}


@pytest.mark.parametrize("value, problem", [
    ('"0.5"', "span 0: uncertainty '0.5' is not a finite number"),
    ("NaN", "span 0: uncertainty nan is not a finite number"),
    (None, "span 0: span [3, 3] lies outside the sentence of 2 words"),
])
def test_wrong_values_in_the_input_are_named_with_file_and_line(tmp_path, value, problem):
    path = tmp_path / "local.jsonl"
    unc = "0.5" if value is None else value
    where = "[3, 3]" if value is None else "[0, 0]"
    path.write_text(f'{{"id": 0, "sentence": "a b", "entity": [{{"entity": "a", "span": {where}, "pred": "O", '
                    f'"uncertainty": {unc}}}]}}\n')
    run = llm_cli("--input_file", str(path), "--save_file", str(tmp_path / "o.jsonl"), "--labels", "A,B", "--dry_run")
    assert run.returncode == 1 and run.stderr == f"error: {path}: line 1: {problem}\n"


@pytest.mark.parametrize("flags, problem", [
    (["--concurrency", "0"], "argument --concurrency: expected a whole number from 1 to 1024, got '0'"),
    (["--max_attempts", "-1"], "argument --max_attempts: expected a whole number from 1 to 100, got '-1'"),
    (["--shot", "-3"], "argument --shot: expected a whole number from 0 to 64, got '-3'"),
    (["--threshold", "nan"], "argument --threshold: expected a number, got 'nan'"),
    (["--threshold_sweep", "0.2,inf"], "argument --threshold_sweep: expected a number, got 'inf'"),
    (["--timeout", "-1"], "argument --timeout: expected a number above 0, got '-1'"),
    (["--llm_name", "claude"], "argument --llm_name: unknown LLM 'claude' (gpt, openai, llama, qwen, hf)"),
    (["--llm_name", "qwen", "--llm_ckpt", "{tmp}/nope"], "argument --llm_ckpt: {tmp}/nope: no such file or directory"),
    (["--label_desc", "{tmp}/nope.json"], "argument --label_desc: {tmp}/nope.json: no such file"),
    (["--label_desc", "{tmp}/local.jsonl"], "argument --label_desc: {tmp}/local.jsonl: expected a JSON object"),
    (["--label_desc", os.path.join(ROOT, "README.md")], "README.md: not a JSON file"),
    (["--selectShot_dir", "{tmp}/nope.txt", "--shot", "1"], "argument --selectShot_dir: {tmp}/nope.txt: no such file"),
])
def test_bad_flag_values_are_usage_errors(tmp_path, capsys, flags, problem):
    input_file = write_input(tmp_path, n=1)
    with pytest.raises(SystemExit) as exit_:
        llm_inference.main(["--input_file", input_file, "--save_file", str(tmp_path / "o.jsonl"),
                            *[f.format(tmp=tmp_path) for f in flags]])
    assert exit_.value.code == 2 and problem.format(tmp=tmp_path) in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.parametrize("content, problem", [
    ("", "no records (an empty file)"),
    ('{"id": 0, "sentence": "a", "entity": [{"entity": "a", "span": [0, 0], "pred": "A", "uncer', "line 1: malformed JSON"),
    ('{"id": 0, "sentence": "a", "entity": [{"entity": "a", "span": [0, 0], "pred": 3, "uncertainty": 0.5}]}\n',
     "line 1: span 0: pred 3 is not a label"),
])
def test_an_empty_truncated_or_wrong_input_is_one_line(tmp_path, content, problem):
    path = tmp_path / "local.jsonl"
    path.write_text(content)
    with pytest.raises(SystemExit) as exit_:  # a string: printed as is, exit status 1
        llm_inference.main(["--input_file", str(path), "--save_file", str(tmp_path / "o.jsonl"), "--labels", "A,B",
                            "--base_url", "http://127.0.0.1:9"])
    assert exit_.value.code.startswith(f"error: {path}: {problem}") and "\n" not in exit_.value.code


def test_a_missing_input_is_one_line(tmp_path):
    missing = llm_cli("--input_file", str(tmp_path / "none.jsonl"), "--save_file", str(tmp_path / "o.jsonl"))
    assert missing.returncode == 1 and missing.stderr == f"error: {tmp_path}/none.jsonl: no such file\n"
