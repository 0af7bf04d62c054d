"""The LLM stage under faults: a server that asks for an hour's wait, replies without content,
Ctrl-C, a local input regenerated under a linked output, flags that contradict each other, and
two live runs sharing one reply cache. Nothing paid for is lost, nothing is silently wrong, and
what is left undone is pending (exit status 3) for a rerun to ask."""
import json
import os
import signal
import subprocess
import sys

import pytest

import llm_inference
import local_inference
from inference.llm.cache import ReplyCache
from tests.helpers import REPO, ctrl_c_works, no_real_openai, wait_for  # noqa: F401 (autouse fixture)
from tests.support.loopback_server import Fail, Garbage, LLMServer, entity_of
from utils import jsonl

ANSWERS = {"German": "Miscellaneous", "Paris": "Location", "Smith": "Person"}


def answer(prompt):
    return ANSWERS.get(entity_of(prompt), "Non-entity")


def write_local(path, preds=("O", "LOC", "LOC"), n=3):
    """n local records, each with three spans above the threshold (German, Paris, Smith)."""
    words = "EU rejects German call Paris Smith".split()
    gold = [[2, 2, "MISC"], [4, 4, "LOC"], [5, 5, "PER"]]
    lines = [{"id": i, "tokens": words, "sentence": " ".join(words), "gold": gold,
              "entity": [{"entity": words[s], "span": [s, s], "pred": pred, "uncertainty": 0.9, "answer": g[2]}
                         for (s, _, _), pred, g in zip(gold, preds, gold)]} for i in range(n)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return str(path)


def link(tmp_path, server, *flags, n=3):
    """llm_inference.main on tmp_path/local.jsonl -> tmp_path/linked.jsonl; its metrics."""
    input_file = str(tmp_path / "local.jsonl") if (tmp_path / "local.jsonl").exists() else \
        write_local(tmp_path / "local.jsonl", n=n)
    return llm_inference.main(["--input_file", input_file, "--save_file", str(tmp_path / "linked.jsonl"),
                               "--dataname", "conll03", "--base_url", server.base_url, "--concurrency", "1", *flags])


def statuses(path):
    return [span["llm_status"] for rec in jsonl.read_jsonl(str(path)) for span in rec["entity"]]


def test_a_retry_after_past_the_cap_is_not_waited_for_the_spans_stay_pending(tmp_path):
    """A 429 with Retry-After: 3600 once held a worker for an hour without a word (run apart,
    so that a regression fails at the timeout instead of holding the suite)."""
    input_file = write_local(tmp_path / "local.jsonl")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    with LLMServer(answer=answer, script=[Fail(429, retry_after=3600)]) as server:
        run = subprocess.run([sys.executable, "llm_inference.py", "--input_file", input_file, "--save_file",
                              str(tmp_path / "linked.jsonl"), "--dataname", "conll03", "--base_url", server.base_url,
                              "--concurrency", "1"], cwd=REPO, env=env, capture_output=True, text=True, timeout=90)
        assert run.returncode == 3, run.stderr
        assert len(server.prompts) == 1, "the server that asked for an hour is not asked again in this run"
        assert run.stderr.count("the server asks to wait 3600 s before retrying (Retry-After), more than 30 s") == 1
        assert set(statuses(tmp_path / "linked.jsonl")) == {"failed"}
        metrics = link(tmp_path, server)  # the rerun asks every pending span
    assert set(statuses(tmp_path / "linked.jsonl")) == {"linked", "cached"}  # the three records ask alike
    assert metrics["llm"]["requests"] == 3 and metrics["llm"]["failed"] == 0


def test_a_short_retry_after_is_waited_for_and_said_once(tmp_path, capsys):
    with LLMServer(answer=answer, script=[Fail(429, retry_after=0.3), Fail(429, retry_after=0.3)]) as server:
        link(tmp_path, server, n=1)
        assert server.times[2] - server.times[0] >= 0.55
    assert capsys.readouterr().err.count("the server asks to wait 0.3 s before retrying (Retry-After); waiting") == 1
    assert statuses(tmp_path / "linked.jsonl") == ["linked"] * 3


NULL_REPLY = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": [
    {"index": 0, "message": {"role": "assistant", "content": None}, "finish_reason": "content_filter"}]}).encode()


def test_a_reply_without_content_is_pending_not_unparseable(tmp_path, capsys):
    """`content: null` once counted as an unparseable answer with exit status 0."""
    script = [Garbage(NULL_REPLY, "application/json")] * 2
    with LLMServer(answer=answer, script=script) as server:
        with pytest.raises(SystemExit) as exit_:
            link(tmp_path, server, "--max_attempts", "2", n=1)
        assert exit_.value.code == 3
        assert statuses(tmp_path / "linked.jsonl") == ["failed", "linked", "linked"]
        span = jsonl.read_jsonl(str(tmp_path / "linked.jsonl"))[0]["entity"][0]
        assert "content: null" in span["llm_error"] and span["llm_raw"] is None
        cached = [e["reply"] for e in jsonl.read_jsonl(str(tmp_path / "llm_cache.jsonl"))]
        assert None not in cached and "" not in cached, "no empty reply is kept as an answer"
        link(tmp_path, server, "--max_attempts", "2", n=1)
    assert statuses(tmp_path / "linked.jsonl") == ["linked", "cached", "cached"]  # asked again; the others kept


def test_ctrl_c_while_linking_exits_130(tmp_path):
    input_file = write_local(tmp_path / "local.jsonl", n=4)
    with LLMServer(answer=answer) as server:
        server.hold_after(2)
        env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
        proc = subprocess.Popen([sys.executable, "llm_inference.py", "--input_file", input_file, "--save_file",
                                 str(tmp_path / "linked.jsonl"), "--dataname", "conll03", "--base_url",
                                 server.base_url, "--concurrency", "1"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, preexec_fn=ctrl_c_works)
        try:
            wait_for(lambda: len(server.prompts) >= 3 or proc.poll() is not None, seconds=60)
            proc.send_signal(signal.SIGINT)
            server.release()
            _, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted; the records linked so far are in" in err and "Traceback" not in err


def test_ctrl_c_while_linking_online_exits_130(spanner_ckpt, tmp_path, monkeypatch):
    import inference.local.tagging

    class Interrupted(jsonl.JsonlWriter):
        def write(self, record):
            raise KeyboardInterrupt

    monkeypatch.setattr(inference.local.tagging, "JsonlWriter", Interrupted)
    text = tmp_path / "notes.txt"
    text.write_text("Angela Merkel visited Paris .\n")
    with LLMServer(answer=answer) as server, pytest.raises(SystemExit) as exit_:
        local_inference.main(["--inference_model", spanner_ckpt, "--input_file", str(text), "--save_file",
                              str(tmp_path / "out.jsonl"), "--llm_name", "openai", "--base_url", server.base_url])
    assert exit_.value.code == 130 and "interrupted; the records linked so far are in" in str(exit_.value)


def test_a_regenerated_local_input_is_refused_then_relinked_from_the_cache(tmp_path):
    """A linked output whose local input was tagged again (another model) was once "continued"
    with 0 requests, printing the old model's F1."""
    write_local(tmp_path / "local.jsonl", preds=("O", "LOC", "LOC"))
    with LLMServer(answer=answer) as server:
        first = link(tmp_path, server)
        linked = (tmp_path / "linked.jsonl").read_bytes()
        write_local(tmp_path / "local.jsonl", preds=("MISC", "LOC", "PER"))  # a better model, the same sentences
        with pytest.raises(SystemExit) as exit_:
            link(tmp_path, server)
        assert exit_.value.code.startswith(f"error: {tmp_path}/linked.jsonl: links an earlier version of "
                                           f"{tmp_path}/local.jsonl, which changed since")
        assert (tmp_path / "linked.jsonl").read_bytes() == linked
        asked = len(server.prompts)
        again = link(tmp_path, server, "--overwrite")
    assert len(server.prompts) == asked, "every reply came from the cache"
    assert [s["pred"] for r in jsonl.read_jsonl(str(tmp_path / "linked.jsonl")) for s in r["entity"]] == \
        ["MISC", "LOC", "PER"] * 3
    assert first["local"]["f1"] < again["local"]["f1"] == 1.0


@pytest.mark.parametrize("entry, flags, problem", [
    (llm_inference, ["--budget", "0.1", "--threshold", "0.3"],
     "--budget and --threshold both choose the spans sent to the LLM; give one of them"),
    (local_inference, ["--budget", "0.1"], "--budget chooses the spans sent to the LLM: it needs --llm_name (or --dry_run)"),
])
def test_contradicting_link_flags_are_usage_errors(tmp_path, capsys, entry, flags, problem):
    io = (["--input_file", str(tmp_path / "x.jsonl"), "--save_file", str(tmp_path / "o.jsonl")]
          if entry is llm_inference else ["--inference_model", str(tmp_path), "--input_file", "-",
                                          "--save_file", str(tmp_path / "o.jsonl")])
    with pytest.raises(SystemExit) as exit_:
        entry.main([*io, *flags])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.splitlines()[-1].endswith(f"error: {problem}")


def test_a_live_run_s_partial_line_in_a_shared_cache_is_never_cut(tmp_path):
    """Two runs share llm_cache.jsonl: the second opens it while the first is writing a line."""
    path = tmp_path / "llm_cache.jsonl"
    first = ReplyCache(str(path))
    first.put("k1", 0, "Location")
    with open(path, "ab") as f:  # the first run, mid-line
        f.write(b'{"key": "k2", "attempt": 0, "re')
    second = ReplyCache(str(path))
    assert second.get("k1", 0) == "Location"
    with open(path, "ab") as f:  # the first run ends its line
        f.write(b'ply": "Person"}\n')
    second.put("k3", 0, "Organization")
    second.close()
    first.close()
    with ReplyCache(str(path)) as after:
        assert (after.get("k1", 0), after.get("k2", 0), after.get("k3", 0)) == ("Location", "Person", "Organization")
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_a_line_is_appended_in_one_write(tmp_path, monkeypatch):
    """So that the lines of two processes appending to one file never interleave."""
    calls = []
    write = os.write
    monkeypatch.setattr(jsonl.os, "write", lambda fd, data: calls.append(len(data)) or write(fd, data))
    record = {"reply": "x" * 200_000}
    with jsonl.JsonlWriter(str(tmp_path / "a.jsonl")) as out:
        out.write(record)
    assert calls == [len(json.dumps(record)) + 1]
    assert jsonl.read_jsonl(str(tmp_path / "a.jsonl")) == [record]
