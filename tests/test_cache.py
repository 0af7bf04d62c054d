import json

import pytest

from utils.errors import DataError

from inference.llm.cache import ReplyCache, prompt_key

IDENTITY = {"backend": "openai", "model": "m", "temperature": 0.3, "max_tokens": None}


def test_replies_survive_reopening(tmp_path):
    path = tmp_path / "sub" / "cache.jsonl"
    key = prompt_key(IDENTITY, "prompt")
    with ReplyCache(str(path)) as cache:
        cache.put(key, 0, "hmm")
        cache.put(key, 1, "Location")
    with ReplyCache(str(path)) as cache:
        assert (cache.get(key, 0), cache.get(key, 1), cache.get(key, 2)) == ("hmm", "Location", None)
        assert len(cache) == 2


def test_key_depends_on_model_settings_and_prompt():
    keys = {prompt_key(IDENTITY, "p"), prompt_key({**IDENTITY, "temperature": 0.0}, "p"),
            prompt_key({**IDENTITY, "model": "other"}, "p"), prompt_key(IDENTITY, "q")}
    assert len(keys) == 4
    assert prompt_key(dict(reversed(list(IDENTITY.items()))), "p") == prompt_key(IDENTITY, "p")


def test_a_line_cut_by_a_kill_is_dropped_and_appends_stay_readable(tmp_path):
    path = tmp_path / "cache.jsonl"
    good = json.dumps({"key": "k", "attempt": 0, "reply": "Person"})
    path.write_text(good + "\n" + '{"key": "k2", "attem')
    with pytest.warns(UserWarning, match="partial last line"):
        cache = ReplyCache(str(path))
    cache.put("k3", 0, "Location")
    cache.close()
    with ReplyCache(str(path)) as cache:
        assert (cache.get("k", 0), cache.get("k2", 0), cache.get("k3", 0)) == ("Person", None, "Location")


def test_malformed_lines_are_counted_and_skipped(tmp_path):
    path = tmp_path / "cache.jsonl"
    first = json.dumps({"key": "k0", "attempt": 0, "reply": "A"})
    path.write_text(first + '\nnot json\n{"key": "k"}\n' + json.dumps({"key": "k", "attempt": 0, "reply": "O"}) + "\n")
    with pytest.warns(UserWarning, match="skipped 2 malformed lines"):
        cache = ReplyCache(str(path))
    assert (cache.get("k0", 0), cache.get("k", 0)) == ("A", "O")
    cache.close()


@pytest.mark.parametrize("text", ["my notes\nwithout a newline at the end", '{"id": 0, "entity": []}\n'])
def test_a_file_that_is_not_a_cache_is_refused_and_left_alone(tmp_path, text):
    path = tmp_path / "notes.txt"
    path.write_text(text)
    with pytest.raises(DataError, match="notes.txt: exists and is not a reply cache of this program"):
        ReplyCache(str(path))
    assert path.read_text() == text
