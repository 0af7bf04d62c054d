"""No output destroys what a run reads: every output path (save file, its metrics and settings,
page, plots, prompts file, reply cache) is checked against every file the run reads (the
input, the --data_dir split, the checkpoint's files, the cache) and every other output before
anything is opened for writing, --overwrite or not; a refusal is one line and every file is
left byte for byte as it was."""
import json
import os
import shutil
import subprocess
import sys

import pytest

import llm_inference
import local_inference
from tests.helpers import REPO, SAMPLE_DIR, no_real_openai  # noqa: F401 (autouse fixture)
from tests.support.loopback_server import LLMServer


def snapshot(*folders):
    """Every file under `folders` with its bytes."""
    return {os.path.join(base, name): open(os.path.join(base, name), "rb").read()
            for folder in folders for base, _, names in os.walk(folder) for name in names}


def refused(main, argv):
    """main(argv) must end with one line `error: ...`; that line."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    message = exit_.value.code
    assert isinstance(message, str) and message.startswith("error: ") and "\n" not in message, message
    return message


@pytest.fixture
def ckpt(spanner_ckpt, tmp_path):
    """A copy of the tiny SpanNER checkpoint (with its calibration), to try to overwrite."""
    return shutil.copytree(spanner_ckpt, tmp_path / "ckpt")


@pytest.fixture
def data(tmp_path):
    return shutil.copytree(SAMPLE_DIR, tmp_path / "data")


def linked_input(tmp_path, n=3):
    """A local-inference JSONL of n records, each with one span to ask."""
    path = tmp_path / "local.jsonl"
    words = "EU rejects German call".split()
    path.write_text("".join(json.dumps({"id": i, "tokens": words, "sentence": " ".join(words), "entity": [
        {"entity": "German", "span": [2, 2], "pred": "O", "uncertainty": 0.9, "answer": "MISC"}],
        "gold": [[2, 2, "MISC"]]}) + "\n" for i in range(n)))
    return str(path)


@pytest.mark.parametrize("target", ["test_split", "weights", "config", "calibration"])
def test_local_overwrite_of_a_file_the_run_reads_is_refused(ckpt, data, tmp_path, target):
    """--save_file D/test.txt --overwrite once turned the test split into JSONL, and
    --save_file M/model.safetensors --overwrite the weights."""
    path = {"test_split": data / "test.txt", "weights": ckpt / "model.safetensors", "config": ckpt / "config.json",
            "calibration": ckpt / "calibration.json"}[target]
    flag = "--data_dir" if target == "test_split" else "--inference_model"
    before = snapshot(ckpt, data)
    message = refused(local_inference.main, ["--inference_model", str(ckpt), "--data_dir", str(data),
                                             "--save_file", str(path), "--overwrite"])
    assert message == (f"error: {path}: is also the input ({flag}); writing it would destroy that input; choose "
                       "another output file")
    assert snapshot(ckpt, data) == before and not os.path.exists(f"{path}.lock")


@pytest.mark.parametrize("flag", ["--html", "--plot_dir"])
def test_local_page_or_plot_over_a_checkpoint_file_is_refused(ckpt, tmp_path, flag):
    """--html CHECKPOINT/config.json; --plot_dir whose reliability.png is not a PNG."""
    if flag == "--html":
        target, value = ckpt / "config.json", str(ckpt / "config.json")
        expected = f"error: {target}: is also the input (--inference_model)"
    else:
        (tmp_path / "plots").mkdir()
        target, value = tmp_path / "plots" / "reliability.png", str(tmp_path / "plots")
        target.write_text("my notes\n")
        expected = f"error: {target}: exists and is not a PNG image; it is left alone"
    before = snapshot(ckpt, tmp_path / "plots") if flag == "--plot_dir" else snapshot(ckpt)
    message = refused(local_inference.main, ["--inference_model", str(ckpt), "--input_file",
                                             os.path.join(SAMPLE_DIR, "test.txt"),
                                             "--save_file", str(tmp_path / "o.jsonl"), flag, value])
    assert message.startswith(expected)
    assert (snapshot(ckpt, tmp_path / "plots") if flag == "--plot_dir" else snapshot(ckpt)) == before
    assert not (tmp_path / "o.jsonl").exists()


def write_cache(path):
    path.write_text(json.dumps({"key": "k", "attempt": 0, "reply": "Location"}) + "\n")


@pytest.mark.parametrize("case", ["save_is_cache", "html_is_cache", "html_is_foreign", "weights", "no_llm"])
def test_llm_overwrite_never_empties_a_file_before_every_check_passes(ckpt, tmp_path, case):
    """--save_file OUT/llm_cache.jsonl --overwrite once emptied the paid replies and only then
    refused; --html may not be the cache or a file that is not a page; --overwrite empties only
    JSONL (never weights); an output is kept when no LLM is configured."""
    input_file, out = linked_input(tmp_path), tmp_path / "out"
    out.mkdir()
    cache, save = out / "llm_cache.jsonl", out / "linked.jsonl"
    write_cache(cache)
    save.write_text(json.dumps({"id": 0, "entity": []}) + "\n")
    (out / "notes.txt").write_text("my notes\n")
    flags = {"save_is_cache": ["--save_file", str(cache)],
             "html_is_cache": ["--save_file", str(save), "--html", str(cache)],
             "html_is_foreign": ["--save_file", str(save), "--html", str(out / "notes.txt")],
             "weights": ["--save_file", str(ckpt / "model.safetensors")],
             "no_llm": ["--save_file", str(save)]}[case]
    expected = {"save_is_cache": f"{cache}: is both --save_file and --cache",
                "html_is_cache": f"{cache}: is both --html and --cache",
                "html_is_foreign": f"{out}/notes.txt: exists and is not an HTML page",
                "weights": f"{ckpt}/model.safetensors: exists and is not a JSONL output",
                "no_llm": "no LLM configured"}[case]
    before = snapshot(out, ckpt)
    server = [] if case == "no_llm" else ["--base_url", "http://127.0.0.1:9"]
    with pytest.raises(SystemExit) as exit_:
        llm_inference.main(["--input_file", input_file, "--dataname", "conll03", *flags, *server, "--overwrite"])
    assert expected in str(exit_.value.code) and exit_.value.code != 0
    assert snapshot(out, ckpt) == before


def test_the_prompts_file_may_not_be_the_input(tmp_path):
    input_file = linked_input(tmp_path)
    write_cache(tmp_path / "llm_cache.jsonl")
    before = snapshot(tmp_path)
    message = refused(llm_inference.main, ["--input_file", input_file, "--save_file", str(tmp_path / "linked.jsonl"),
                                           "--dataname", "conll03", "--dry_run", "--prompts_file",
                                           str(tmp_path / "local.jsonl")])
    assert message.startswith(f"error: {tmp_path}/local.jsonl: is also the input (--input_file)")
    assert snapshot(tmp_path) == before


def test_online_save_file_may_not_be_the_cache(ckpt, tmp_path):
    write_cache(tmp_path / "llm_cache.jsonl")
    before = snapshot(tmp_path)
    with LLMServer() as server:
        message = refused(local_inference.main, [
            "--inference_model", str(ckpt), "--input_file", os.path.join(SAMPLE_DIR, "test.txt"),
            "--save_file", str(tmp_path / "llm_cache.jsonl"), "--llm_name", "openai", "--base_url", server.base_url,
            "--overwrite"])
        assert not server.prompts
    assert message.startswith(f"error: {tmp_path}/llm_cache.jsonl: is both --save_file and --cache")
    assert snapshot(tmp_path) == before


def test_a_refusal_from_the_command_line_is_one_line(ckpt, data, tmp_path):
    before = snapshot(data)
    run = subprocess.run([sys.executable, "local_inference.py", "--inference_model", str(ckpt), "--data_dir",
                          str(data), "--save_file", str(data / "test.txt"), "--overwrite"], cwd=REPO,
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 1 and run.stderr == (f"error: {data}/test.txt: is also the input (--data_dir); writing "
                                                  "it would destroy that input; choose another output file\n")
    assert snapshot(data) == before
