"""Sizes past any sense (--max_spanLen 100000 once asked for 42 TB) are refused when the flags
are parsed: one `error:` line, exit 2, nothing created. Training into a directory that holds a
finished model refuses without --overwrite, naming the flag, before any work starts."""
import json
import os
import subprocess
import sys

import pytest

import train_spanner
from models.resume import refuse_finished
from models.training import build_parser
from tests.helpers import REPO, SAMPLE_DIR
from utils.errors import DataError

BOUNDS = {"--max_spanLen": 64, "--bert_max_length": 8192, "--lstm_hidden": 8192, "--lstm_layers": 64,
          "--context_layers": 64, "--tokenLen_emb_dim": 8192, "--spanLen_emb_dim": 8192, "--morph_emb_dim": 8192,
          "--batch_size": 8192, "--iteration": 100_000, "--early_stop": 100_000}
BASE = ["--data_dir", SAMPLE_DIR, "--model_save_dir", "unused"]


@pytest.mark.parametrize("flag, high", BOUNDS.items())
def test_every_training_size_flag_has_an_upper_bound(flag, high, capsys):
    parser = build_parser("t")
    assert parser.parse_args(BASE + [flag, str(high)]) is not None  # the bound itself is allowed
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(BASE + [flag, str(high + 1)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.endswith(f"argument {flag}: expected a whole number from 1 to {high}, got '{high + 1}'")


def test_max_span_len_100000_is_one_line_and_leaves_nothing(tmp_path):
    out = tmp_path / "m"
    run = subprocess.run([sys.executable, "train_spanner.py", "--data_dir", SAMPLE_DIR, "--model_save_dir", str(out),
                          "--encoder", "glove", "--max_spanLen", "100000"], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.splitlines()[-1].endswith("argument --max_spanLen: expected a whole number from 1 to 64, "
                                                "got '100000'")
    assert not out.exists()


def finished(path, dev_f1=0.89):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump({"labels": ["O", "LOC"], "dev_f1": dev_f1}, f)
    with open(os.path.join(path, "model.safetensors"), "wb") as f:
        f.write(b"weights")
    return {name: open(os.path.join(path, name), "rb").read() for name in ("config.json", "model.safetensors")}


def test_training_into_a_finished_model_needs_overwrite(tmp_path):
    out = str(tmp_path / "m")
    before = finished(out)
    with pytest.raises(SystemExit) as exit_:
        train_spanner.main(["--data_dir", SAMPLE_DIR, "--model_save_dir", out, "--encoder", "glove"])
    assert exit_.value.code == (f"error: {out}: holds a finished model (dev F1 0.8900); training there would replace "
                                "it: give --overwrite to replace it, or choose another --model_save_dir")
    assert sorted(os.listdir(out)) == ["config.json", "model.safetensors"]  # no resume/ folder
    assert {name: open(os.path.join(out, name), "rb").read() for name in before} == before


@pytest.mark.parametrize("state, refused", [
    ("finished", True),
    ("killed", False),  # a killed run's state beside it: the same job, restarted afresh or --resume'd
    ("no_dev_f1", False),  # a config without a dev F1 (a pretrained encoder's folder) is no finished model
    ("no_weights", False),
    ("empty", False),
])
def test_what_counts_as_a_finished_model(tmp_path, state, refused):
    out = str(tmp_path / "m")
    os.makedirs(out)
    if state != "empty":
        finished(out, dev_f1=None if state == "no_dev_f1" else 0.5)
    if state == "no_weights":
        os.remove(os.path.join(out, "model.safetensors"))
    if state == "killed":
        os.makedirs(os.path.join(out, "resume"))
        open(os.path.join(out, "resume", "run.json"), "w").write("{}")
    if refused:
        with pytest.raises(DataError, match="--overwrite"):
            refuse_finished(out)
    else:
        refuse_finished(out)


@pytest.mark.parametrize("flag, value", [("--batch_size", "100000"), ("--mc_samples", "5000"), ("--workers", "100000")])
def test_local_inference_size_flags_have_upper_bounds(flag, value, tmp_path, capsys):
    import local_inference

    with pytest.raises(SystemExit) as stop:
        local_inference.parse_args(["--inference_model", str(tmp_path), "--save_file", str(tmp_path / "o.jsonl"),
                                    flag, value])
    assert stop.value.code == 2 and f"argument {flag}: expected a whole number from 1 to" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()
