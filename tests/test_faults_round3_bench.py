"""The bench scripts answer a bad flag or a missing or corrupt file in one line, like the entry
points: exit 1 with `error: FILE: problem` (exit 2 with argparse's error line for a bad flag
value), never a traceback, and a corrupt --out is left as it was."""
import os
import subprocess
import sys

import pytest

from tests.helpers import REPO


def bench(*argv):
    run = subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in run.stderr, run.stderr
    return run.returncode, run.stderr.strip().splitlines()


@pytest.fixture
def data_dir(tmp_path):
    for name in ("conll03", "wnut17", "twitter"):
        (tmp_path / "data" / name).mkdir(parents=True)
    return str(tmp_path / "data")


@pytest.mark.parametrize("content, problem", [
    (None, "no such results file (run the bench first, or give --out)"),
    ("{not json", "not a results file (not JSON: Expecting property name enclosed in double quotes: line 1 column 2 "
                  "(char 1))"),
    ("[1, 2]", "not a results file (expected a JSON object)"),
    ('{"machine": {}}', "incomplete results (KeyError: 'train'); rerun the bench"),
])
def test_tables_only_with_a_missing_or_corrupt_out(tmp_path, data_dir, content, problem):
    out = tmp_path / "results.json"
    if content is not None:
        out.write_text(content)
    code, err = bench("bench/run.py", "--tables_only", "--data_dir", data_dir, "--out", str(out), "--results_doc", "")
    assert (code, err) == (1, [f"error: {out}: {problem}"])
    assert (out.read_text() if content is not None else None) == content


def test_noisy_text_refuses_an_unknown_set_before_anything():
    code, err = bench("bench/noisy_text.py", "--sets", "wnut16,bogus")
    assert code == 2 and err[-1].endswith(
        "error: argument --sets: unknown data set 'bogus' (expected a comma list of twitter, wnut16, wnut17)")


def test_noisy_text_with_a_corrupt_out(tmp_path):
    out = tmp_path / "noisy.json"
    out.write_text("{")
    code, err = bench("bench/noisy_text.py", "--out", str(out), "--sets", "wnut16")
    assert code == 1 and err == [f"error: {out}: not a results file (not JSON: Expecting property name enclosed in "
                                 "double quotes: line 1 column 2 (char 1))"]


@pytest.mark.parametrize("argv, line", [
    (["bench/windows.py", "--model", "/nonexistent", "--data", "/nonexistent", "--out", "OUT"],
     "error: /nonexistent: not a checkpoint directory (no config.json)"),
    (["bench/training_variants.py", "--data_dir", "/nonexistent"],
     "error: /nonexistent: no such directory (see ../shared/README.md)"),
    (["bench/llm_throughput.py", "--concurrencies", "1,x"], "argument --concurrencies: expected a whole number, got 'x'"),
    (["bench/windows.py", "--model", "M", "--data", "D", "--out", "O", "--lengths", "512,100000"],
     "argument --lengths: expected a whole number from 1 to 8192, got '100000'"),
])
def test_other_bench_scripts_answer_in_one_line(tmp_path, argv, line):
    argv = [str(tmp_path / "w.json") if a == "OUT" else a for a in argv]
    code, err = bench(*argv)
    assert code in (1, 2) and err[-1].endswith(line)
    assert code == 2 or len(err) == 1
    assert not os.path.exists(tmp_path / "w.json")
