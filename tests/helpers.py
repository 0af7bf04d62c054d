"""Helpers the test modules share (conftest.py keeps only fixtures)."""
import os
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_DIR = os.path.join(REPO, "data", "sample")
SHARED_DATA = os.path.join(os.path.dirname(REPO), "shared", "data")


def to_bio(spans, n_words):
    """(start, end, label) spans, end inclusive, as BIO tags: the input seqeval scores."""
    tags = ["O"] * n_words
    for s, e, label in spans:
        tags[s:e + 1] = [f"B-{label}"] + [f"I-{label}"] * (e - s)
    return tags


def wait_for(condition, seconds=60):
    """Poll `condition` until it holds; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def no_real_openai(monkeypatch):
    """Imported into a test module, keeps every test in it off the real OpenAI."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
