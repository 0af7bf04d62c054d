"""A preflight (python -m inference.llm.calibrate_link) stopped by a fatal LLM error or Ctrl-C
names what really exists: the reply cache beside --out (it writes --out only at the end), not
a linked output it never writes."""
import os

import pytest

from inference.llm import calibrate_link
from inference.llm.linker import Linker
from tests.helpers import no_real_openai  # noqa: F401 (autouse fixture)
from tests.support.loopback_server import LLMServer
from tests.test_link_fusion import local_output


def preflight(tmp_path, server, *extra):
    local_output(tmp_path / "dev.jsonl", 40, seed=1)
    return calibrate_link.main(["--input_file", str(tmp_path / "dev.jsonl"), "--dataname", "conll03",
                                "--llm_name", "gpt", "--base_url", server.base_url, "--out",
                                str(tmp_path / "out" / "gate.json"), *extra])


def test_a_fatal_error_names_the_reply_cache_that_exists(tmp_path):
    (tmp_path / "out").mkdir()
    cache = tmp_path / "out" / "llm_cache.jsonl"
    with LLMServer(api_key="right") as server, pytest.raises(SystemExit) as stop:  # no key sent: 401, fatal
        preflight(tmp_path, server)
    message = str(stop.value.code)
    assert message.startswith("stopped: ")
    assert message.endswith(f"\nThe replies received so far are in the reply cache {cache}; a rerun reuses them.")
    assert cache.is_file() and not (tmp_path / "out" / "gate.json").exists()


def interrupt(*args, **kwargs):
    raise KeyboardInterrupt
    yield


@pytest.mark.parametrize("extra, kept", [
    ((), "the replies received so far are in the reply cache {cache}; a rerun reuses them"),
    (("--no_cache",), "nothing was kept (--no_cache): a rerun asks every span again"),
])
def test_ctrl_c_names_what_is_kept(tmp_path, monkeypatch, capsys, extra, kept):
    (tmp_path / "out").mkdir()
    cache = tmp_path / "out" / "llm_cache.jsonl"
    monkeypatch.setattr(Linker, "link_records", interrupt)
    with LLMServer() as server, pytest.raises(SystemExit) as stop:
        preflight(tmp_path, server, *extra)
    assert stop.value.code == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"interrupted; {kept.format(cache=cache)}."
    assert os.path.isfile(cache) == (not extra)
    assert not (tmp_path / "out" / "gate.json").exists()
