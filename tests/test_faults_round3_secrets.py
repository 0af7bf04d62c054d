"""A password (or token) in the server URL is shown nowhere: not in the metrics, not in a
failed record's llm_error, not on stderr, not in a fatal error's line; the URL is shown with
its userinfo as ***."""
import json

import pytest

from inference.llm.backends import FatalError, OpenAIBackend
from tests.helpers import no_real_openai  # noqa: F401 (autouse fixture)
from tests.support.loopback_server import Fail, LLMServer
from utils.secrets import redact, redact_argv, redact_url, url_secrets

PASSWORD = "s3cr%40PW"  # percent-encoded "s3cr@PW": both spellings are secret


def with_userinfo(base_url, userinfo=f"alice:{PASSWORD}"):
    return base_url.replace("http://", f"http://{userinfo}@")


@pytest.mark.parametrize("url, shown, secrets", [
    ("http://alice:pw@host:8000/v1", "http://***@host:8000/v1", ["alice:pw", "pw"]),
    ("https://TOKEN123@host/v1", "https://***@host/v1", ["TOKEN123"]),
    ("http://a:b%40c@host/v1", "http://***@host/v1", ["a:b%40c", "a:b@c", "b%40c", "b@c"]),
    ("http://host:8000/v1", "http://host:8000/v1", []),
    (None, None, []),
])
def test_the_userinfo_of_a_url_is_what_is_hidden(url, shown, secrets):
    assert redact_url(url) == shown
    assert sorted(url_secrets(url)) == sorted(secrets)


def test_the_longest_secret_goes_first():
    assert redact("user alice:pw at host, pw again", ["pw", "alice:pw"]) == "user *** at host, *** again"


def test_a_printed_command_shows_the_url_redacted():
    argv = ["--input_file", "in.jsonl", "--base_url", "http://alice:pw@h/v1", "--base_url=http://t0k@h/v1", "--x", "a@b"]
    assert redact_argv(argv) == ["--input_file", "in.jsonl", "--base_url", "http://***@h/v1", "--base_url=http://***@h/v1",
                                 "--x", "a@b"]


def write_local(path, n=2):
    words = "EU rejects German call".split()
    recs = [{"id": i, "tokens": words, "sentence": " ".join(words), "gold": [[2, 2, "MISC"]],
             "entity": [{"entity": "German", "span": [2, 2], "pred": "O", "uncertainty": 0.9, "answer": "MISC"}]}
            for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return str(path)


def test_failed_records_metrics_and_stderr_never_show_the_password(tmp_path, capsys):
    # the server echoes the password back in its error message: that is redacted too
    import llm_inference  # the entry point, in-process

    script = [Fail(500, message=f"upstream refused alice:{PASSWORD} (s3cr@PW)") for _ in range(4)]
    save = tmp_path / "linked.jsonl"
    with LLMServer(script=script) as server, pytest.raises(SystemExit, match="^3$"):  # spans failed: pending
        llm_inference.main(["--input_file", write_local(tmp_path / "local.jsonl"), "--save_file", str(save),
                            "--dataname", "conll03", "--base_url", with_userinfo(server.base_url),
                            "--max_attempts", "2", "--concurrency", "1"])
    err = capsys.readouterr().err
    records = save.read_text()
    metrics = (tmp_path / "linked.jsonl.metrics.json").read_text()
    errors = [s["llm_error"] for line in records.splitlines() for s in json.loads(line)["entity"]]
    assert len(errors) == 2 and all(e.startswith("HTTP 500 from http://***@127.0.0.1:") for e in errors), errors
    assert json.loads(metrics)["llm"]["backend"]["base_url"] == redact_url(with_userinfo(server.base_url))
    for text in (records, metrics, err):
        assert "s3cr" not in text and "alice" not in text


def test_the_rerun_command_hides_the_password(tmp_path, capsys):
    import llm_inference  # the entry point, in-process

    with LLMServer(script=[Fail(500) for _ in range(2)]) as server, pytest.raises(SystemExit, match="^3$"):
        llm_inference.main(["--input_file", write_local(tmp_path / "local.jsonl", n=1), "--save_file",
                            str(tmp_path / "linked.jsonl"), "--dataname", "conll03", "--max_attempts", "2",
                            "--base_url", with_userinfo(server.base_url), "--concurrency", "1"])
    err = capsys.readouterr().err
    assert "rerun to ask them" in err and "s3cr" not in err and "alice" not in err


def test_a_fatal_error_line_hides_the_token():
    with LLMServer(script=[Fail(401, message="token TOKEN123 is not valid")]) as server:
        backend = OpenAIBackend(model="m", base_url=with_userinfo(server.base_url, "TOKEN123"), timeout=5)
        with pytest.raises(FatalError) as err:
            backend.complete("hello")
    assert "TOKEN123" not in str(err.value) and str(err.value).startswith("HTTP 401 from http://***@127.0.0.1:")
