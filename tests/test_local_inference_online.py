"""Online linking: local_inference.py --llm_name against a real OpenAI-compatible
server on 127.0.0.1, through the official openai client."""
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from html.parser import HTMLParser

import pytest

import inference.llm.link_output
import inference.local.tagging
import llm_inference
import local_inference
from dataloaders.readers import read_dataset
from inference.reports.page import change_kind
from tests.helpers import REPO, SAMPLE_DIR, wait_for
from tests.support.loopback_server import Fail, LLMServer, entity_of
from utils.jsonl import JsonlWriter, read_jsonl

NAMES = ("Location", "Person", "Organization", "Miscellaneous", "Non-entity")
RAW = ["Anna Berg moved from São  Paulo to Zürich, Switzerland.",
       "  (EU)   rejects \"German\" call; Peter's café in Ærø stays open!  ",
       "Talks in Brussels — led by Jean-Claude Juncker — ended on 1996-08-22."]


def answer(prompt):
    """A fixed label per entity surface, the same in every process."""
    return NAMES[sum(map(ord, entity_of(prompt))) % len(NAMES)]


@pytest.fixture(autouse=True)
def dummy_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-dummy-for-tests")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


@pytest.fixture
def server():
    with LLMServer(answer=answer) as srv:
        yield srv


def local(checkpoint, save_file, *args):
    return local_inference.main(["--inference_model", checkpoint, "--save_file", str(save_file), *args])


def first_sentences(path, n):
    """The first n sentences of data/sample/test.txt as plain text lines."""
    path.write_text("".join(" ".join(s.words) + "\n" for s in read_dataset(f"{SAMPLE_DIR}/test.txt")[:n]),
                    encoding="utf-8")
    return str(path)


class Page(HTMLParser):
    """The <mark>s of a report: (text, data-type)."""

    def __init__(self, path):
        super().__init__()
        self.marks, self._open = [], False
        with open(path, encoding="utf-8") as f:
            self.feed(f.read())

    def handle_starttag(self, tag, attrs):
        if tag == "mark":
            self.marks.append(["", dict(attrs)["data-type"]])
            self._open = True

    def handle_endtag(self, tag):
        self._open = self._open and tag != "mark"

    def handle_data(self, data):
        if self._open:
            self.marks[-1][0] += data


def shown(records):
    """(text, label) of each entity the page must mark: the LLM's label, or the dropped one."""
    out = []
    for rec in records:
        for ent in sorted(rec["entity"], key=lambda e: e["span"]):
            kind = change_kind(ent)
            if kind:
                out.append([ent["entity"], ent["pred"] if kind == "removed" else ent["llm_pred"]])
    return out


def drop(metrics, *keys):
    return {k: v for k, v in metrics.items() if k not in keys}


@pytest.mark.parametrize("flags", [["--threshold", "0.45"], ["--dataname", "conll03", "--threshold_sweep", "0.5,0.6"]],
                         ids=["model-labels", "conll03-sweep"])
def test_online_equals_local_then_llm_inference(spanner_ckpt, server, tmp_path, flags):
    test_file, llm = f"{SAMPLE_DIR}/test.txt", ["--base_url", server.base_url, *flags]
    local_metrics = local(spanner_ckpt, tmp_path / "two" / "local.jsonl", "--input_file", test_file)
    two = llm_inference.main(["--input_file", str(tmp_path / "two" / "local.jsonl"), "--save_file",
                              str(tmp_path / "two" / "linked.jsonl"), "--html", str(tmp_path / "two.html"), *llm])
    online = local(spanner_ckpt, tmp_path / "one" / "linked.jsonl", "--input_file", test_file, "--llm_name", "openai",
                   "--html", str(tmp_path / "one.html"), *llm)
    text = (tmp_path / "one" / "linked.jsonl").read_text(encoding="utf-8")
    assert text == (tmp_path / "two" / "linked.jsonl").read_text(encoding="utf-8")
    records = read_jsonl(str(tmp_path / "one" / "linked.jsonl"))
    asked = [e for r in records for e in r["entity"] if e["llm_status"] != "below_threshold"]
    assert asked and {e["llm_status"] for e in asked} == {"linked"}
    assert sorted(Counter(server.prompts).values()) == [2] * len(asked)  # once per run, each run its own cache
    on_disk = json.loads((tmp_path / "one" / "linked.jsonl.metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(online))
    assert drop(online, "llm", "labels", "local_inference") == drop(two, "llm")
    assert drop(online["llm"], "wall_s", "requests_per_s") == drop(two["llm"], "wall_s", "requests_per_s")
    per_run = ("seconds", "sentences_per_second")
    assert drop(online["local_inference"], *per_run) == drop(local_metrics, *per_run)
    assert online["labels"] == local_metrics["labels"]
    for page in ("one.html", "two.html"):
        assert Page(tmp_path / page).marks == shown(records)


def test_raw_text_online_keeps_offsets_and_marks_every_entity(spanner_ckpt, server, tmp_path):
    (tmp_path / "notes.txt").write_text("\n".join(RAW) + "\n", encoding="utf-8")
    save, html = tmp_path / "notes.jsonl", tmp_path / "notes.html"
    local(spanner_ckpt, save, "--input_file", str(tmp_path / "notes.txt"), "--candidate_threshold", "0",
          "--threshold", "0", "--llm_name", "gpt", "--base_url", server.base_url, "--html", str(html))
    records = read_jsonl(str(save))
    assert [r["text"] for r in records] == RAW
    # Every listed span asked, nothing else. A surface twice in a sentence (two quote marks) is
    # the same prompt: asked once if the first reply is cached in time, twice if both were in flight.
    surfaces = [e["entity"] for r in records for e in r["entity"]]
    assert len(surfaces) > 10 and set(map(entity_of, server.prompts)) == set(surfaces)
    assert len(server.prompts) <= len(surfaces)
    for rec in records:
        for ent in rec["entity"]:
            start, end = ent["char_span"]
            assert rec["text"][start:end] == ent["entity"]
    marks = Page(html).marks
    assert marks == shown(records) and marks
    assert {label for _, label in marks} <= {"LOC", "PER", "ORG", "MISC"}


def test_dry_run_writes_the_prompts_llm_inference_would_send(spanner_ckpt, tmp_path):
    text = first_sentences(tmp_path / "notes.txt", 20)
    local(spanner_ckpt, tmp_path / "local.jsonl", "--input_file", text)
    llm_inference.main(["--input_file", str(tmp_path / "local.jsonl"), "--save_file", str(tmp_path / "two.jsonl"),
                        "--dry_run"])
    local(spanner_ckpt, tmp_path / "one.jsonl", "--input_file", text, "--llm_name", "gpt", "--dry_run")
    prompts = (tmp_path / "one.prompts.jsonl").read_text(encoding="utf-8")
    assert prompts and prompts == (tmp_path / "two.prompts.jsonl").read_text(encoding="utf-8")
    assert not (tmp_path / "one.jsonl").exists()


def test_output_of_the_other_mode_or_no_llm_is_a_clear_error(spanner_ckpt, tmp_path, monkeypatch):
    text = first_sentences(tmp_path / "notes.txt", 3)
    local(spanner_ckpt, tmp_path / "out.jsonl", "--input_file", text)
    with pytest.raises(SystemExit, match="written with other settings: (.|\n)*online false \\(now true\\)(.|\n)*--overwrite"):
        local(spanner_ckpt, tmp_path / "out.jsonl", "--input_file", text, "--llm_name", "gpt", "--base_url", "x")
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(SystemExit, match="no LLM configured(.|\n)*--dry_run"):
        local(spanner_ckpt, tmp_path / "new.jsonl", "--input_file", text, "--llm_name", "gpt")


def lines(path):
    return path.read_text(encoding="utf-8").count("\n") if path.exists() else 0


def test_a_killed_run_from_stdin_continues_and_asks_nothing_twice(spanner_ckpt, tmp_path):
    text = first_sentences(tmp_path / "notes.txt", 30)
    with LLMServer(answer=answer) as fresh_server:  # the reference: one uninterrupted run
        local(spanner_ckpt, tmp_path / "fresh" / "out.jsonl", "--input_file", text, "--llm_name", "openai",
              "--base_url", fresh_server.base_url)
    fresh = read_jsonl(str(tmp_path / "fresh" / "out.jsonl"))
    save, cache = tmp_path / "out.jsonl", tmp_path / "llm_cache.jsonl"
    with LLMServer(answer=answer) as server:
        args = ["--inference_model", spanner_ckpt, "--save_file", str(save), "--llm_name", "openai",
                "--base_url", server.base_url, "--concurrency", "2"]
        server.hold_after(12)  # answer 12 spans, then hold every request
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        with open(text, "rb") as stdin, open(tmp_path / "killed.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "local_inference.py", *args, "--input_file", "-"], cwd=REPO,
                                    env=env, stdin=stdin, stdout=log, stderr=subprocess.STDOUT)
        try:
            def stuck():
                assert proc.poll() is None, (tmp_path / "killed.log").read_text()
                return len(server.prompts) == 14 and lines(cache) == 12 and lines(save) > 0
            wait_for(stuck)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=20)
        finally:
            proc.kill()
        written = lines(save)
        server.release()
        local_inference.main(args + ["--input_file", text])
    records = read_jsonl(str(save))
    assert 0 < written < len(records) == len(fresh) == 30
    assert max(server.answered.values()) == 1
    asked = [e for r in fresh for e in r["entity"] if e["llm_status"] != "below_threshold"]
    assert sum(server.answered.values()) == len(asked)
    as_fresh = [{**r, "entity": [{**e, "llm_status": e["llm_status"].replace("cached", "linked")} for e in r["entity"]]}
                for r in records]
    assert as_fresh == fresh
    assert [r["text"] for r in records] == open(text, encoding="utf-8").read().splitlines()


@pytest.mark.parametrize("entry", [local_inference, llm_inference])
def test_ctrl_c_while_a_record_is_written_keeps_every_reply_and_stops(spanner_ckpt, tmp_path, monkeypatch, entry):
    """Ctrl-C outside the linker's own code: the requests in flight finish into the cache, no
    new one starts, and the message says how to continue."""
    class Interrupted(JsonlWriter):  # Ctrl-C lands while the tenth record is written
        def write(self, record):
            super().write(record)
            if lines(tmp_path / "out.jsonl") == 10:
                raise KeyboardInterrupt

    text = first_sentences(tmp_path / "notes.txt", 30)
    if entry is llm_inference:
        local(spanner_ckpt, tmp_path / "local.jsonl", "--input_file", text)
    writer_module = {local_inference: inference.local.tagging, llm_inference: inference.llm.link_output}[entry]
    monkeypatch.setattr(writer_module, "JsonlWriter", Interrupted)
    with LLMServer(answer=answer, latency=0.2) as server:
        llm = ["--save_file", str(tmp_path / "out.jsonl"), "--base_url", server.base_url, "--concurrency", "4"]
        with pytest.raises(SystemExit, match="interrupted; the records linked so far are in"):
            if entry is llm_inference:
                llm_inference.main(["--input_file", str(tmp_path / "local.jsonl"), *llm])
            else:
                local_inference.main(["--inference_model", spanner_ckpt, "--input_file", text,
                                      "--llm_name", "openai", *llm])
        asked = len(server.prompts)
        time.sleep(0.5)  # more than two requests' time
    assert len(server.prompts) == asked == sum(server.answered.values()) == lines(tmp_path / "llm_cache.jsonl") > 0


def run_script(env, cwd):
    return subprocess.run(["bash", os.path.join(REPO, "scripts", "predict.sh")], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env=env)


def test_predict_sh(spanner_ckpt, server, tmp_path):
    settings = ("MODEL_SAVE_DIR", "INPUT_FILE", "SAVE_FILE", "HTML", "LLM_NAME", "LLM_MODEL", "BASE_URL", "LLM_CKPT",
                "DATANAME", "LINK_THRESHOLD", "SHOT", "DRY_RUN", "OPENAI_API_KEY", "OPENAI_BASE_URL")
    env = {k: v for k, v in os.environ.items() if k not in settings}
    env.update(PYTHON=sys.executable, OMP_NUM_THREADS="1")
    missing = run_script(env, tmp_path)
    assert missing.returncode == 1 and "set MODEL_SAVE_DIR " in missing.stderr and "/path/to/" in missing.stderr
    (tmp_path / "notes.txt").write_text("\n".join(RAW) + "\n", encoding="utf-8")
    env.update(MODEL_SAVE_DIR=spanner_ckpt, INPUT_FILE="notes.txt", SAVE_FILE="out/local.jsonl")
    alone = run_script(env, tmp_path)  # relative paths are the caller's
    assert alone.returncode == 0, alone.stderr
    assert "no LLM configured" in alone.stderr and "BASE_URL" in alone.stderr
    assert "llm_pred" not in (tmp_path / "out" / "local.jsonl").read_text(encoding="utf-8")
    env.update(SAVE_FILE="out/linked.jsonl", BASE_URL=server.base_url, LLM_MODEL="test-model", LINK_THRESHOLD="0")
    linked = run_script(env, tmp_path)
    assert linked.returncode == 0, linked.stderr
    records = read_jsonl(str(tmp_path / "out" / "linked.jsonl"))
    assert all(e["llm_status"] == "linked" for r in records for e in r["entity"]) and server.prompts
    assert Page(tmp_path / "out" / "linked.html").marks == shown(records)


def test_two_online_runs_on_one_output_the_second_refuses_naming_the_first(spanner_ckpt, tmp_path):
    text = first_sentences(tmp_path / "notes.txt", 5)
    save = tmp_path / "out.jsonl"
    with LLMServer(answer=answer) as server:
        server.hold_after(0)  # the first run waits on its first reply
        args = ["--inference_model", spanner_ckpt, "--input_file", text, "--save_file", str(save),
                "--llm_name", "openai", "--base_url", server.base_url, "--threshold", "0"]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        first = subprocess.Popen([sys.executable, "local_inference.py", *args], cwd=REPO, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: server.prompts, seconds=60)
            with pytest.raises(SystemExit) as second:  # flock: another open file, even in this process
                local_inference.main(args)
            assert second.value.code == (
                f"error: {save}: another run (PID {first.pid}) is writing it; wait for it to finish or choose "
                "another --save_file")
            server.release()
            assert first.wait(timeout=60) == 0
        finally:
            first.kill()
    assert max(server.answered.values()) == 1 and len(read_jsonl(str(save))) == 5


def test_online_failed_spans_exit_3_and_a_rerun_asks_only_them(spanner_ckpt, tmp_path):
    text = first_sentences(tmp_path / "notes.txt", 5)
    save = tmp_path / "out.jsonl"
    args = ["--input_file", text, "--llm_name", "openai", "--threshold", "0", "--max_attempts", "1"]
    with LLMServer(answer=answer, script=[Fail(503)]) as server:
        with pytest.raises(SystemExit) as exit_:
            local(spanner_ckpt, save, *args, "--base_url", server.base_url, "--concurrency", "1")
        assert exit_.value.code == 3
        asked = len(server.prompts)
        metrics = local(spanner_ckpt, save, *args, "--base_url", server.base_url)
    assert len(server.prompts) == asked + 1
    records = read_jsonl(str(save))
    assert len(records) == 5 and metrics["llm"]["failed"] == 0 and metrics["llm"]["asked"] == asked


def test_online_fuse_settles_the_same_labels_as_two_stages(spanner_ckpt, server, tmp_path, monkeypatch):
    """--combine fuse online and in two stages: the same final file, every label decided once,
    by the run's adaptation of the gate (which here opens a budget dev closed)."""
    import inference.llm.link_run
    from inference.fuse.gate import Gate
    from inference.fuse.model import Linear
    from inference.fuse.run import adapt, sent_answered
    from inference.fuse.shift import ShiftModel
    from inference.records import decide

    monkeypatch.setattr(inference.llm.link_run, "check_gate", lambda *a: None)  # a hand-made gate: no identity

    def flat(n, *intercepts):
        return Linear([0.0] * n, [1.0] * n, [[0.0] * n for _ in intercepts], list(intercepts))

    # dev: the local label right far more often than the LLM where they differ, and both right 90 %
    # of the time (so they should agree often); dev kept the local labels
    gate = Gate(flat(7, 0.0, 2.2, -2.0), [[0.45, "keep"]], 0.45, ShiftModel(flat(3, 2.2), flat(3, 2.2), 0.25,
                                                                            [[0.45, 0.0, 0.1]]))
    gate.save(str(tmp_path / "gate.json"))
    test_file = f"{SAMPLE_DIR}/test.txt"
    llm = ["--base_url", server.base_url, "--threshold", "0.45", "--combine", "fuse",
           "--link_calibration", str(tmp_path / "gate.json")]
    local(spanner_ckpt, tmp_path / "two" / "local.jsonl", "--input_file", test_file)
    two = llm_inference.main(["--input_file", str(tmp_path / "two" / "local.jsonl"), "--save_file",
                              str(tmp_path / "two" / "linked.jsonl"), *llm])
    online = local(spanner_ckpt, tmp_path / "one" / "linked.jsonl", "--input_file", test_file, "--llm_name", "openai",
                   *llm)
    text = (tmp_path / "one" / "linked.jsonl").read_text(encoding="utf-8")
    assert text == (tmp_path / "two" / "linked.jsonl").read_text(encoding="utf-8")
    records = read_jsonl(str(tmp_path / "one" / "linked.jsonl"))
    run = adapt(gate, lambda: sent_answered(records, 0.45), 0.45)
    assert online["fuse_shift"] == two["fuse_shift"] == run.shift < 0 and run.choice != "keep" == run.dev_choice
    assert online["fuse_choice"] == two["fuse_choice"] == run.choice
    spans = [s for r in records for s in r["entity"]]
    assert [s["llm_pred"] for s in spans] == [decide(s, 0.45, run.label)
                                              for s in spans]
    assert any(s["llm_pred"] != s["pred"] for s in spans)  # the run took answers dev's choice would not


def test_an_online_budget_says_the_share_it_sent(spanner_ckpt, server, tmp_path, capsys):
    """Online, a --budget's threshold comes from the dev uncertainties stored with the checkpoint;
    the run prints the share of this input's listed spans it actually sent, counted here by hand."""
    save = tmp_path / "out.jsonl"
    metrics = local(spanner_ckpt, save, "--input_file", f"{SAMPLE_DIR}/test.txt", "--llm_name", "openai",
                    "--base_url", server.base_url, "--budget", "0.2")
    spans = [s for r in read_jsonl(str(save)) for s in r["entity"]]
    sent = sum(s["llm_status"] != "below_threshold" for s in spans)
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("budget 20.0%"))
    assert line.startswith(f"budget 20.0%: {sent} of {len(spans)} listed spans sent ({sent / len(spans):.1%})")
    assert metrics["sent"] == sent and metrics["listed"] == len(spans)
    assert ("sends the share asked for" in line) == (abs(sent / len(spans) - 0.2) >= 0.01)
