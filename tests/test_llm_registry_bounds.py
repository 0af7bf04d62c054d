"""One list of backend names (inference/llm/backends.BACKENDS): a name registered there is
accepted by --llm_name and reaches make_backend; one that is not exits 2 naming the list. The
LLM stage's size flags and calibrate's --batch_size have upper bounds, checked when parsed."""
import pytest

import llm_inference
import local_inference
from inference.llm import backends
from inference.llm.backends import Backend, Completion, Registered, make_backend
from inference.llm.calibrate_link import parse_args as preflight_args
from inference.llm.settings import LinkSettings
from inference.local import calibrate
from tests.helpers import REPO, no_real_openai  # noqa: F401 (autouse fixture)
from utils.errors import ConfigError


class EchoBackend(Backend):
    name = "echo"

    def __init__(self, settings, options):
        self.settings, self.options = settings, options

    def identity(self):
        return {"backend": self.name}

    def complete(self, prompt):
        return Completion("Person")


@pytest.fixture
def echo(monkeypatch):
    monkeypatch.setitem(backends.BACKENDS, "echo", Registered(EchoBackend))


def last_error(capsys):
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("given", ["echo", "ECHO"])
def test_a_registered_name_is_parsed_and_reaches_make_backend(echo, given, tmp_path):
    args = llm_inference.parse_args(["--input_file", "in.jsonl", "--save_file", str(tmp_path / "o.jsonl"),
                                     "--llm_name", given, "--dataname", "conll03"])
    settings = LinkSettings.from_args(args)
    assert settings.llm_name == given and not settings.local_llm
    backend = make_backend(settings, options=["Person", "Non-entity"])
    assert isinstance(backend, EchoBackend)
    assert backend.settings is settings and backend.options == ["Person", "Non-entity"]


def test_a_registered_local_backend_counts_as_local(monkeypatch):
    monkeypatch.setitem(backends.BACKENDS, "mine", Registered(EchoBackend, local=True))
    assert LinkSettings(save_file="o", llm_name="mine").local_llm
    assert not LinkSettings(save_file="o", llm_name="gpt-4o").local_llm


@pytest.mark.parametrize("parse", [
    lambda name: llm_inference.parse_args(["--input_file", "i", "--save_file", "o", "--llm_name", name]),
    lambda name: local_inference.parse_args(["--checkpoint", REPO, "--input_file", "-", "--save_file", "o",
                                             "--llm_name", name]),
    lambda name: preflight_args(["i", "--out", "o.json", "--llm_name", name]),
])
def test_an_unregistered_name_exits_2_naming_the_registered_ones(parse, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse("echo")
    assert exit_.value.code == 2
    assert last_error(capsys).endswith("argument --llm_name: unknown LLM 'echo' (gpt, openai, llama, qwen, hf)")


def test_the_builtin_names(monkeypatch):
    assert list(backends.BACKENDS) == ["gpt", "openai", "llama", "qwen", "hf"]
    assert backends.registered("gpt-4o-mini") is backends.BACKENDS["gpt"]  # gpt names every gpt model
    assert backends.registered("GPT") is backends.BACKENDS["gpt"]
    assert backends.registered("llama3") is None and backends.registered("opena") is None
    assert [n for n, e in backends.BACKENDS.items() if e.local] == ["llama", "qwen", "hf"]


def test_make_backend_refuses_an_unknown_name_as_a_setting_error():
    with pytest.raises(ConfigError, match=r"^unknown --llm_name 'echo' \(gpt, openai, llama, qwen, hf\)$"):
        make_backend(LinkSettings(save_file="o", llm_name="echo"))


LLM_BOUNDS = [("--max_tokens", 1, 32_768), ("--concurrency", 1, 1024), ("--max_attempts", 1, 100),
              ("--shot", 0, 64)]


@pytest.mark.parametrize("flag, low, high", LLM_BOUNDS)
def test_llm_size_flags_are_bounded(flag, low, high, capsys):
    base = ["--input_file", "i", "--save_file", "o", "--selectShot_dir", __file__]
    for ok in (low, high):
        assert getattr(llm_inference.parse_args(base + [flag, str(ok)]), flag[2:]) == ok
    for bad in (low - 1, high + 1, 10 ** 12):
        with pytest.raises(SystemExit) as exit_:
            llm_inference.parse_args(base + [flag, str(bad)])
        assert exit_.value.code == 2
        assert last_error(capsys).endswith(f"argument {flag}: expected a whole number from {low} to {high}, "
                                           f"got '{bad}'")


@pytest.mark.parametrize("flag, low, high", LLM_BOUNDS)
def test_online_mode_shares_the_bounds(flag, low, high, capsys):
    with pytest.raises(SystemExit) as exit_:
        local_inference.parse_args(["--checkpoint", REPO, "--input_file", "-", "--save_file", "o",
                                    flag, str(high + 1)])
    assert exit_.value.code == 2
    assert last_error(capsys).endswith(f"argument {flag}: expected a whole number from {low} to {high}, "
                                       f"got '{high + 1}'")


@pytest.mark.parametrize("value", ["0", "8193", "100000", "-3", "lots"])
def test_calibrate_batch_size_is_bounded(value, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        calibrate.main([str(tmp_path), "--data_dir", str(tmp_path), "--batch_size", value])
    assert exit_.value.code == 2
    err = last_error(capsys)
    assert err.endswith(f"error: argument --batch_size: expected a whole number{' from 1 to 8192' * (value != 'lots')}, "
                        f"got '{value}'")
    assert list(tmp_path.iterdir()) == []  # nothing written
