"""run_cli turns the project's own errors (utils/errors.py) and file errors into one line; a
plain ValueError or KeyError is a bug and keeps its traceback. The settings errors that once
relied on any ValueError becoming a line are ConfigError / DataError now."""
import subprocess
import sys

import pytest

from inference.budget import check_budget, uncertainty_table
from inference.llm.backends import make_backend
from inference.llm.prompt import dataset_spec, generic_spec
from inference.llm.settings import LinkSettings
from inference.local.decode import decode_sentence
from inference.local.uncertainty import span_probabilities
from tests.helpers import REPO
from utils.cli import run_cli
from utils.errors import ConfigError, DataError
from utils.versioned_json import format_of, is_older, read_versioned


def fails(err):
    def fn():
        raise err
    return fn


@pytest.mark.parametrize("err, line", [
    (DataError("data.jsonl: line 3: no tokens"), "error: data.jsonl: line 3: no tokens"),
    (ConfigError("--budget is the share of listed spans to send, in (0, 1]; got 2.0"),
     "error: --budget is the share of listed spans to send, in (0, 1]; got 2.0"),
    (FileNotFoundError(2, "No such file or directory", "missing.jsonl"), "error: missing.jsonl: No such file or directory"),
    (PermissionError(13, "Permission denied", "/root/x"), "error: /root/x: Permission denied"),
])
def test_own_errors_and_file_errors_end_in_one_line(err, line):
    with pytest.raises(SystemExit) as exit_:
        run_cli(fails(err))
    assert exit_.value.code == line


@pytest.mark.parametrize("err", [ValueError("math domain error"), KeyError("entity"), TypeError("bad operand"),
                                 ZeroDivisionError("division by zero")])
def test_a_bug_keeps_its_exception(err):
    with pytest.raises(type(err)) as raised:
        run_cli(fails(err))
    assert raised.value is err


def test_a_bug_in_an_entry_point_prints_its_traceback(tmp_path):
    code = ("from utils.cli import run_cli\n"
            "def bug():\n    return {}['entity']\n"
            "run_cli(bug)\n")
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "Traceback (most recent call last)" in run.stderr and run.stderr.strip().endswith("KeyError: 'entity'")
    assert "error: " not in run.stderr


def test_json_and_unicode_errors_of_the_stdlib_are_not_caught():
    """json.JSONDecodeError and UnicodeDecodeError are ValueErrors: a reader that lets one out is
    a bug (readers raise DataError naming the file and line)."""
    with pytest.raises(UnicodeDecodeError):
        run_cli(lambda: b"\xff".decode("utf-8"))


# the settings errors that reach run_cli, each a project error now (hand-written messages)
@pytest.mark.parametrize("call, kind, text", [
    (lambda: check_budget(1.5), ConfigError, "--budget is the share of listed spans to send, in (0, 1]; got 1.5"),
    (lambda: dataset_spec("conll"), ConfigError, "unknown dataname 'conll' (known: "),
    (lambda: generic_spec(["O"]), ConfigError, "the label set has no entity labels"),
    (lambda: generic_spec(["O", "PER", "per"]), ConfigError, "labels O, PER, per give clashing option names"),
    (lambda: generic_spec(["O", "PER"], {"LOC": "places"}), ConfigError, "descriptions for unknown labels: LOC"),
    (lambda: uncertainty_table([]), DataError, "no listed spans to build a budget table from"),
    (lambda: make_backend(LinkSettings(save_file="o", llm_name="bard")), ConfigError,
     "unknown --llm_name 'bard' (gpt, openai, llama, qwen, hf)"),
    (lambda: span_probabilities(__import__("torch").zeros(2, 3), "softmax_entropy"), ConfigError,
     "unknown uncertainty_type 'softmax_entropy'"),
    (lambda: decode_sentence([(0, 0)], __import__("numpy").ones((1, 2)) / 2, __import__("numpy").zeros(1),
                             ["O", "PER"], paper_protocol=True, words=["Ann"]), ConfigError,
     "paper_protocol lists the gold spans, so it needs gold labels"),
])
def test_settings_errors_are_project_errors(call, kind, text):
    with pytest.raises(kind) as raised:
        call()
    assert str(raised.value).startswith(text)
    with pytest.raises(SystemExit) as exit_:
        run_cli(call)
    assert exit_.value.code.startswith(f"error: {text}")


def test_a_damaged_versioned_file_is_a_data_error(tmp_path):
    path = tmp_path / "calibration.json"
    path.write_text("{not json")
    with pytest.raises(DataError, match=f"^{path}: not JSON"):
        read_versioned(str(path), "linkner.x/1", "thing")
    path.write_text('{"format": "other/1"}')
    with pytest.raises(DataError, match=rf"^{path}: not a thing \(linkner.x/1\)$"):
        read_versioned(str(path), "linkner.x/1", "thing")
    path.write_text('{"format": "linkner.x/0"}')  # another version of the same format is named as such
    with pytest.raises(DataError, match=rf"^{path}: a thing of an older format \(linkner.x/0\); refit it$"):
        read_versioned(str(path), "linkner.x/1", "thing", "refit it")
    assert format_of(str(path)) == "linkner.x/0" and format_of(str(tmp_path / "none.json")) is None
    assert is_older("linkner.x/0", "linkner.x/1") and not is_older("linkner.x/1", "linkner.x/1")
    assert not is_older("linkner.xy/0", "linkner.x/1") and not is_older(None, "linkner.x/1")


def test_a_gguf_file_transformers_refuses_is_one_line(tmp_path):
    """transformers answers a broken model file with a ValueError: at the loading boundary it is
    a DataError naming the file (python -m inference.llm.gguf, and --llm_ckpt)."""
    from inference.llm import gguf

    path = tmp_path / "bad.gguf"
    path.write_text("not a model\n")
    with pytest.raises(SystemExit) as exit_:
        gguf.main([str(path), str(tmp_path / "folder")])
    assert exit_.value.code == (f"error: {path}: cannot be loaded: {path} does not start with the GGUF magic bytes, "
                                "so it is not a GGUF file.")
    assert not (tmp_path / "folder").exists()


def test_a_model_folder_of_an_unknown_architecture_is_one_line(tmp_path):
    from inference.llm.gguf import load_causal_lm

    (tmp_path / "config.json").write_text('{"model_type": "nonsense"}')
    with pytest.raises(DataError) as err:
        load_causal_lm(str(tmp_path))
    assert str(err.value).startswith(f"{tmp_path}: cannot be loaded: The checkpoint you are trying to load has "
                                     "model type `nonsense`")


def test_a_local_outputs_metrics_file_is_read_or_refused_in_one_line(tmp_path):
    from inference.llm.labels import local_metrics_of, model_labels

    out = tmp_path / "local.jsonl"
    assert local_metrics_of(str(out)) == {} and model_labels(str(out)) is None  # none beside it
    metrics = tmp_path / "local.jsonl.metrics.json"
    metrics.write_text('{"labels": ["O", "PER"], "checkpoint": "m"}')
    assert model_labels(str(out)) == ["O", "PER"] and local_metrics_of(str(out))["checkpoint"] == "m"
    for text in ("[1, 2]", "{not json"):
        metrics.write_text(text)
        with pytest.raises(DataError, match=rf"^{metrics}: not a metrics JSON object$"):
            local_metrics_of(str(out))
