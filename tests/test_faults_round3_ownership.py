"""Ownership by real path: a symlink to an output shares its lock, an output reached through a
link that does not exist yet is still the same file, a reply cache is never emptied by
--overwrite, `discard_output` removes only what is ours, and the helper tools (`python -m
dataloaders.convert`, `inference.reports.page`, `inference.llm.gguf`) never write onto an
input, a data split, a checkpoint file or a cache: one line, non-zero exit, the file intact."""
import json
import os
import subprocess
import sys

import pytest

from dataloaders import convert
from inference.llm import gguf
from inference.reports import page
from tests.helpers import REPO, SAMPLE_DIR
from utils.errors import DataError
from utils.output_lock import OutputLock
from utils.owned_output import claim_output, discard_output, refuse_overlaps

CACHE_LINE = json.dumps({"key": "abc", "attempt": 0, "reply": "Location"}) + "\n"


def test_a_symlink_to_a_locked_output_is_refused(tmp_path):
    real, link = tmp_path / "real.jsonl", tmp_path / "link.jsonl"
    real.write_text("")
    link.symlink_to(real)
    with OutputLock(str(real)):
        with pytest.raises(DataError, match=rf"^{link} \(that is {real}\): another run"):
            OutputLock(str(link)).acquire()
    with OutputLock(str(link)):  # released: the link may take it, and the real path is then held
        with pytest.raises(DataError, match=rf"^{real}: another run \(PID {os.getpid()}\)"):
            OutputLock(str(real)).acquire()


def test_overwrite_through_a_symlink_while_another_run_writes_changes_nothing(tmp_path):
    real, link = tmp_path / "out.jsonl", tmp_path / "alias.jsonl"
    link.symlink_to(real)
    with claim_output(str(real), {"a": 1}):
        real.write_text('{"id": 0}\n')
        with pytest.raises(DataError, match="another run"):
            with claim_output(str(link), {"a": 2}, overwrite=True):
                pass
        assert real.read_text() == '{"id": 0}\n'


def test_a_dangling_link_to_another_output_is_that_output(tmp_path):
    target, link = tmp_path / "later.jsonl", tmp_path / "link.jsonl"
    link.symlink_to(target)  # neither exists yet
    with pytest.raises(DataError, match="is both --save_file and --html"):
        refuse_overlaps([("--save_file", str(target)), ("--html", str(link))], [])
    with pytest.raises(DataError, match=r"is also the input \(--input_file\)"):
        refuse_overlaps([("--save_file", str(tmp_path / "sub" / ".." / "link.jsonl"))], [("--input_file", str(target))])


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_reply_cache_is_never_emptied_as_an_output(tmp_path, overwrite):
    cache = tmp_path / "llm_cache.jsonl"
    cache.write_text(CACHE_LINE * 3)
    with pytest.raises(DataError, match="reply cache|not known to be this program's output"):
        with claim_output(str(cache), {"a": 1}, overwrite=overwrite):
            pass
    assert cache.read_text() == CACHE_LINE * 3
    assert not os.path.exists(str(cache) + ".settings.json")


def test_discard_output_removes_our_output_and_refuses_a_foreign_file(tmp_path):
    ours = tmp_path / "ours.jsonl"
    with claim_output(str(ours), {"a": 1}):
        ours.write_text('{"id": 0}\n')
    (tmp_path / "ours.jsonl.metrics.json").write_text("{}")
    discard_output(str(ours))
    assert sorted(os.listdir(tmp_path)) == []  # output, metrics, settings and lock gone
    for foreign_text in ('{"id": 0}\n', CACHE_LINE):
        foreign = tmp_path / "foreign.jsonl"
        foreign.write_text(foreign_text)
        with pytest.raises(DataError, match="not known to be this program's output"):
            discard_output(str(foreign))
        assert foreign.read_text() == foreign_text


# -- the helper tools ------------------------------------------------------------------------

@pytest.fixture
def precious(tmp_path):
    """Files no tool may write onto: a column split, a checkpoint's config, weights and
    tokenizer file, and a reply cache (name -> path), each with its content."""
    ckpt = tmp_path / "ckpt"
    (ckpt / "tokenizer").mkdir(parents=True)
    files = {"split": tmp_path / "dev.txt", "config": ckpt / "config.json", "weights": ckpt / "model.safetensors",
             "tokenizer": ckpt / "tokenizer" / "vocab.txt", "cache": tmp_path / "llm_cache.jsonl"}
    contents = {"split": "EU B-ORG\nrejects O\n", "config": json.dumps({"labels": ["O", "ORG"], "dev_f1": 0.89}),
                "weights": "\x08\x00\x00\x00\x00\x00\x00\x00{}      ", "tokenizer": "[PAD]\n[UNK]\n[CLS]\n",
                "cache": CACHE_LINE}
    for name, path in files.items():
        path.write_text(contents[name])
    return {name: (str(path), contents[name]) for name, path in files.items()}


def one_line_exit(call):
    with pytest.raises(SystemExit) as exit_:
        call()
    code = exit_.value.code
    assert isinstance(code, str) and code.startswith("error: ") and "\n" not in code
    return code


@pytest.mark.parametrize("target", ["split", "config", "weights", "tokenizer", "cache"])
@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_convert_never_writes_onto_a_split_a_checkpoint_file_or_a_cache(precious, target, overwrite):
    path, content = precious[target]
    code = one_line_exit(lambda: convert.main([os.path.join(SAMPLE_DIR, "dev.txt"), path, *overwrite]))
    assert code.startswith(f"error: {path}: exists")
    assert open(path).read() == content


def test_convert_replaces_an_earlier_conversion_only_with_overwrite(tmp_path):
    out = tmp_path / "spanner.dev"
    assert convert.main([os.path.join(SAMPLE_DIR, "dev.txt"), str(out)]) == 0
    first = out.read_text()
    assert len(json.loads(first)) == 100  # data/sample/dev.txt: 100 sentences
    code = one_line_exit(lambda: convert.main([os.path.join(SAMPLE_DIR, "test.txt"), str(out)]))
    assert "give --overwrite" in code and out.read_text() == first
    assert convert.main([os.path.join(SAMPLE_DIR, "test.txt"), str(out), "--overwrite"]) == 0
    assert out.read_text() != first and len(json.loads(out.read_text())) == 100


@pytest.mark.parametrize("target", ["split", "config", "weights", "tokenizer", "cache"])
def test_the_page_never_replaces_what_is_not_a_page(precious, tmp_path, target):
    src = tmp_path / "pred.jsonl"
    src.write_text(json.dumps({"id": 0, "tokens": ["EU"], "entity": [{"span": [0, 0], "pred": "ORG"}]}) + "\n")
    path, content = precious[target]
    code = one_line_exit(lambda: page.main([str(src), path]))
    assert code == f"error: {path}: exists and is not an HTML page; it is left alone: choose another file"
    assert open(path).read() == content


@pytest.mark.parametrize("what", ["file", "folder"])
def test_gguf_export_never_writes_onto_a_file_or_a_folder_of_other_files(tmp_path, what):
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    out = tmp_path / "out"
    if what == "file":
        out.write_text("EU B-ORG\n")
    else:
        out.mkdir()
        (out / "dev.txt").write_text("EU B-ORG\n")
    code = one_line_exit(lambda: gguf.main([str(model), str(out)]))
    assert code.startswith(f"error: {out}: ")
    assert (out.read_text() if what == "file" else (out / "dev.txt").read_text()) == "EU B-ORG\n"


def test_the_tools_answer_in_one_line_from_the_shell(precious):
    path, content = precious["split"]
    for argv in (["-m", "dataloaders.convert", os.path.join(SAMPLE_DIR, "dev.txt"), path],
                 ["-m", "inference.reports.page", os.path.join(SAMPLE_DIR, "dev.txt"), path]):
        run = subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert run.returncode == 1 and run.stderr.startswith(f"error: {path}: ") and run.stderr.count("\n") == 1
    assert open(path).read() == content


def test_llm_inference_overwrite_never_empties_another_runs_reply_cache(tmp_path):
    """llm_inference.py --no_cache --save_file OTHER/llm_cache.jsonl --overwrite: refused, one line."""
    import llm_inference

    other = tmp_path / "other"
    other.mkdir()
    cache = other / "llm_cache.jsonl"
    cache.write_text(CACHE_LINE * 2)
    local = tmp_path / "local.jsonl"
    local.write_text(json.dumps({"id": 0, "tokens": ["EU"], "sentence": "EU", "entity": [
        {"entity": "EU", "span": [0, 0], "pred": "ORG", "uncertainty": 0.9}]}) + "\n")
    code = one_line_exit(lambda: llm_inference.main([
        "--input_file", str(local), "--save_file", str(cache), "--dataname", "conll03", "--no_cache", "--overwrite",
        "--base_url", "http://127.0.0.1:9/v1"]))
    assert code.startswith(f"error: {cache}: is a reply cache")
    assert cache.read_text() == CACHE_LINE * 2
