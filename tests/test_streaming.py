"""local_inference.py on a stream: each input format is read lazily, a run stopped halfway and
continued writes the bytes of an uninterrupted one, `--workers 2` writes the bytes of one
worker, and a dead or failing worker stops the run at once with one line, the output kept for a
rerun. The references are independent: `json.load` for the incremental JSON reader, and an
uninterrupted one-worker run for every interrupted or parallel one."""
import contextlib
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

import local_inference
from dataloaders import readers
from dataloaders.readers import DOCSTART, iter_dataset, read_dataset
from inference.local import tagging
from inference.reports.calibration import LocalScores, auroc, ece, entity_outcomes
from tests.helpers import REPO, SAMPLE_DIR, wait_for
from utils.errors import DataError
from utils.jsonl import JsonlWriter, read_jsonl

TEST_FILE = os.path.join(SAMPLE_DIR, "test.txt")
SMALL_CHUNK = 16  # several chunks out of data/sample/test.txt's 100 sentences


@pytest.fixture(scope="module")
def sentences():
    return read_dataset(TEST_FILE)


def infer(ckpt, save_file, *args):
    return local_inference.main(["--inference_model", ckpt, "--save_file", str(save_file), *args])


@pytest.fixture(scope="module")
def reference(spanner_ckpt, tmp_path_factory):
    """The uncontested output: data/sample/test.txt in chunks of SMALL_CHUNK, one worker, uninterrupted."""
    save = tmp_path_factory.mktemp("reference") / "out.jsonl"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tagging, "CHUNK", SMALL_CHUNK)
        infer(spanner_ckpt, save, "--input_file", TEST_FILE)
    return save.read_bytes()


# -- every format is read as it goes ---------------------------------------------------------

def spanner_record(sent):
    return {"context": " ".join(sent.words), "span_posLabel": {f"{s};{e}": lab for s, e, lab in sent.entities}}


def column_text(sent):
    tags = ["O"] * len(sent.words)
    for s, e, lab in sent.entities:
        tags[s:e + 1] = [f"B-{lab}"] + [f"I-{lab}"] * (e - s)
    return "".join(f"{w} {t}\n" for w, t in zip(sent.words, tags)) + "\n"


def broken_after(fmt, sents):
    """(file name, content): `sents` in format `fmt`, then a record that does not read."""
    if fmt == "spanner":
        body = ",\n".join(json.dumps(spanner_record(s)) for s in sents)
        return "spanner.test", f'[{{"context": "{DOCSTART}"}},\n{body},\n{{"context": 3}}]'
    if fmt == "jsonl":
        lines = [json.dumps(spanner_record(s)) for s in sents[:5]]
        lines += [json.dumps({"tokens": s.words, "gold": [list(g) for g in s.entities]}) for s in sents[5:]]
        return "in.jsonl", "\n".join(lines) + '\n{"tokens": 3}\n'
    if fmt == "column":
        return "in.txt", "".join(map(column_text, sents)) + "Paris\n"
    return "in.txt", "".join(" ".join(s.words) + "\n" for s in sents) + "\udcff\n"  # not UTF-8 once encoded


@pytest.mark.parametrize("fmt", ["spanner", "jsonl", "column", "text"])
def test_each_format_yields_its_sentences_before_reading_further(sentences, tmp_path, fmt):
    """A reader that held the file would raise before giving any sentence; this one gives the
    good ones first (text: past the buffer its decoder reads at once), and then names the file
    (and the line) of the bad record."""
    good = sentences * 20 if fmt == "text" else sentences[:12]
    name, content = broken_after(fmt, good)
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8", errors="surrogateescape"))
    stream = iter_dataset(str(path))
    got = list(itertools.islice(stream, 12))
    assert [s.words for s in got] == [s.words for s in good[:12]]
    if fmt != "text":
        assert [s.entities for s in got] == [s.entities for s in good[:12]]
    with pytest.raises(DataError) as err:
        list(stream)
    assert str(err.value).startswith(str(path))


def test_the_json_reader_equals_json_load_whatever_the_read_size(sentences, tmp_path, monkeypatch):
    """Records, numbers and strings cut anywhere by the reader's buffer (7 characters at a time)."""
    records = [spanner_record(s) for s in sentences] + [{"context": "a b", "span_posLabel": {}, "x": 12345.5e-3}]
    path = tmp_path / "spanner.test"
    path.write_text(json.dumps(records, indent=1), encoding="utf-8")
    expected = read_dataset(str(path))
    monkeypatch.setattr(readers._JsonReader, "READ", 7)
    assert read_dataset(str(path)) == expected
    assert [s.words for s in expected] == [s.words for s in sentences] + [["a", "b"]]
    (tmp_path / "spanner.dev").write_text('[{"context": "a b"},\n\n {"context": "c"} {"context": "d"}]')
    with pytest.raises(DataError, match=r"spanner.dev: malformed JSON at line 3, column 19: Expecting ','"):
        read_dataset(str(tmp_path / "spanner.dev"))


def test_local_scores_equal_the_batch_metrics_of_the_same_records(spanner_ckpt, reference, tmp_path):
    records = [json.loads(line) for line in reference.decode().splitlines()]
    scores = LocalScores()
    for rec in records:
        scores.add_record(rec)
    preds, golds = [r["entity"] for r in records], [[tuple(g) for g in r["gold"]] for r in records]
    conf, unc, correct = entity_outcomes(preds, golds)
    metrics = scores.metrics()
    assert metrics["ece"] == pytest.approx(ece(conf, correct)) and metrics["auroc"] == pytest.approx(auroc(unc, ~correct))
    assert metrics["n_entities"] == len(conf) > 0


# -- stopped halfway and continued ----------------------------------------------------------

class StopAfter(JsonlWriter):
    """A writer that dies after `limit` records, as a killed run would (KeyboardInterrupt)."""
    limit = 0

    def write(self, record):
        if StopAfter.limit == 0:
            raise KeyboardInterrupt
        StopAfter.limit -= 1
        super().write(record)


@pytest.mark.parametrize("written", [37, 48])  # within a chunk, and at a chunk's end
def test_a_run_stopped_halfway_and_continued_writes_the_uninterrupted_bytes(spanner_ckpt, reference, tmp_path,
                                                                          monkeypatch, written):
    monkeypatch.setattr(tagging, "CHUNK", SMALL_CHUNK)
    save = tmp_path / "out.jsonl"
    monkeypatch.setattr(tagging, "JsonlWriter", StopAfter)
    StopAfter.limit = written
    with pytest.raises(SystemExit):
        infer(spanner_ckpt, save, "--input_file", TEST_FILE)
    assert save.read_bytes() == b"".join(reference.splitlines(keepends=True)[:written])
    monkeypatch.setattr(tagging, "JsonlWriter", JsonlWriter)
    with open(save, "ab") as f:
        f.write(b'{"id": 37, "sent')  # and killed while writing the next line
    with pytest.warns(UserWarning, match="partial last line"):
        metrics = infer(spanner_ckpt, save, "--input_file", TEST_FILE)
    assert save.read_bytes() == reference
    assert metrics["n_sentences"] == 100  # the records of both runs scored


def test_a_continued_run_checks_the_written_tokens_against_the_input(spanner_ckpt, reference, tmp_path, monkeypatch):
    monkeypatch.setattr(tagging, "CHUNK", SMALL_CHUNK)
    save = tmp_path / "out.jsonl"
    lines = reference.splitlines(keepends=True)
    other = json.loads(lines[20])
    other["tokens"] = ["Something", "else"]
    save.write_bytes(b"".join(lines[:20]) + (json.dumps(other) + "\n").encode())
    infer(spanner_ckpt, tmp_path / "fresh.jsonl", "--input_file", TEST_FILE)  # its settings, for this output
    (tmp_path / "out.jsonl.settings.json").write_bytes((tmp_path / "fresh.jsonl.settings.json").read_bytes())
    with pytest.raises(SystemExit, match="holds output for other input"):
        infer(spanner_ckpt, save, "--input_file", TEST_FILE)
    save.write_bytes(reference + reference.splitlines(keepends=True)[0])  # more records than the input has
    with pytest.raises(SystemExit, match="holds output for other input"):
        infer(spanner_ckpt, save, "--input_file", TEST_FILE)


# -- workers -----------------------------------------------------------------------------------

def test_two_workers_write_the_bytes_of_one_on_a_stream(spanner_ckpt, reference, tmp_path, monkeypatch):
    """JSON Lines input, read as it goes, chunks shared out to two processes."""
    monkeypatch.setattr(tagging, "CHUNK", SMALL_CHUNK)
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text("".join(json.dumps({"tokens": s.words, "gold": [list(g) for g in s.entities]}) + "\n"
                             for s in read_dataset(TEST_FILE)), encoding="utf-8")
    save = tmp_path / "w2.jsonl"
    infer(spanner_ckpt, save, "--input_file", str(jsonl), "--workers", "2")
    assert save.read_bytes() == reference


def killed_at(lo):
    """A chunk tagger whose worker kills itself (as the OOM killer would) on the chunk at `lo`."""
    tag = tagging.chunk_records

    def chunk_records(*args):
        if args[-1][0] == lo:
            os.kill(os.getpid(), signal.SIGKILL)
        return tag(*args)

    return chunk_records


def raises_at(lo):
    tag = tagging.chunk_records

    def chunk_records(*args):
        if args[-1][0] == lo:
            raise RuntimeError("a bug in chunk 48")
        return tag(*args)

    return chunk_records


@pytest.mark.parametrize("fault, fate", [(killed_at, r"was killed by signal 9 \(SIGKILL\)"),
                                         (raises_at, "failed: RuntimeError: a bug in chunk 48")])
def test_a_dead_or_failing_worker_stops_the_run_and_a_rerun_continues(spanner_ckpt, reference, tmp_path,
                                                                       monkeypatch, capsys, fault, fate):
    monkeypatch.setattr(tagging, "CHUNK", SMALL_CHUNK)
    original = tagging.chunk_records
    monkeypatch.setattr(tagging, "chunk_records", fault(48))
    save = tmp_path / "out.jsonl"
    started = time.monotonic()
    with pytest.raises(SystemExit) as err:
        infer(spanner_ckpt, save, "--input_file", TEST_FILE, "--workers", "2")
    assert time.monotonic() - started < 30
    assert re.fullmatch(rf"error: --workers: worker PID \d+ {fate}.*; the output so far is kept, rerun to continue",
                        str(err.value.code))
    written = save.read_bytes()
    assert written == reference[:len(written)] and written.endswith(b"\n") or not written  # in order, whole lines
    assert len(written.splitlines()) <= 48
    monkeypatch.setattr(tagging, "chunk_records", original)
    infer(spanner_ckpt, save, "--input_file", TEST_FILE, "--workers", "2")
    assert save.read_bytes() == reference


@contextlib.contextmanager
def piped_run(*args):
    """local_inference.py with `args` (one torch thread), its standard input a pipe; killed and
    reaped on the way out, whatever the test did."""
    run = subprocess.Popen([sys.executable, "local_inference.py", *args], cwd=REPO, text=True,
                           env={**os.environ, "OMP_NUM_THREADS": "1"}, stdin=subprocess.PIPE,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield run
    finally:
        run.kill()
        run.wait()
        run.stderr.close()


def children(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


@pytest.mark.skipif(not os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children"),
                    reason="needs Linux /proc/PID/task/PID/children to find the workers")
def test_a_worker_killed_from_outside_ends_the_command_within_seconds(spanner_ckpt, sentences, tmp_path):
    """kill -9 on one of the command's two workers: exit status 1 and one line, no hang."""
    text = "".join(" ".join(s.words) + "\n" for s in sentences) * 40  # 4,000 lines, 8 chunks
    save = tmp_path / "out.jsonl"
    with piped_run("--inference_model", spanner_ckpt, "--input_file", "-", "--save_file", str(save),
                   "--workers", "2") as run:
        run.stdin.write(text[:len(text) // 2])  # the rest after the kill: the command waits on its input meanwhile
        run.stdin.flush()
        wait_for(lambda: len(children(run.pid)) == 2, seconds=60)
        victim = children(run.pid)[0]
        os.kill(victim, signal.SIGKILL)
        try:
            run.stdin.write(text[len(text) // 2:])
            run.stdin.close()
        except BrokenPipeError:  # it stopped first
            pass
        run.wait(timeout=30)
        err = run.stderr.read()
    assert run.returncode == 1
    assert err.strip().splitlines()[-1] == (f"error: --workers: worker PID {victim} was killed by signal 9 (SIGKILL) "
                                            "(the out-of-memory killer, or kill -9); the output so far is kept, "
                                            "rerun to continue")
    ids = [r["id"] for r in read_jsonl(str(save))]
    assert ids == list(range(len(ids)))  # nothing out of order


def test_standard_input_is_tagged_as_it_comes(spanner_ckpt, sentences, tmp_path):
    """The first chunk's records are written while standard input is still open."""
    lines = ["".join(" ".join(s.words) + "\n" for s in sentences)] * 6  # 600 lines: one chunk and more
    save = tmp_path / "out.jsonl"
    with piped_run("--inference_model", spanner_ckpt, "--input_file", "-", "--save_file", str(save)) as run:
        run.stdin.write("".join(lines))
        run.stdin.flush()
        wait_for(lambda: save.exists() and save.read_bytes().count(b"\n") == tagging.CHUNK, seconds=60)
        assert run.poll() is None  # still waiting on its input
        run.stdin.close()
        run.wait(timeout=60)
        err = run.stderr.read()
    assert run.returncode == 0, err
    assert [r["tokens"] for r in read_jsonl(str(save))] == [s.words for s in sentences] * 6
