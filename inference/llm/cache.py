"""Append-only JSONL cache of LLM replies, safe against a kill at any moment.

Each line is `{"key": ..., "attempt": i, "reply": ...}`: the i-th reply received for one prompt
sent to one model with one set of decoding settings (`prompt_key`). Keeping every attempt,
not only the last, lets a restarted run replay a span's unparseable replies and go on with
the next attempt, so no reply already paid for is asked again. Lines are flushed as they are
written; a line cut short by a kill is dropped (with a warning) when the cache is next opened.

Several runs may share one cache (their outputs in one folder): each holds a shared `flock`
on it while open, and appends whole lines only. A run cuts a partial last line only when it
gets the lock alone, so never the line a live run is still writing; otherwise it reads the
complete lines and leaves the rest to its writer.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import threading
import warnings
from typing import Any, Optional

from utils.jsonl import JsonlWriter, complete_lines
from utils.owned_output import CACHE_ENTRY_KEYS as ENTRY_KEYS
from utils.owned_output import refuse_foreign


def prompt_key(identity: dict[str, Any], prompt: str) -> str:
    """Hash of the backend identity (name, model, decoding settings) and the prompt."""
    blob = json.dumps({"backend": identity, "prompt": prompt}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ReplyCache:
    def __init__(self, path):
        self.path = path
        self._replies = {}
        self._lock = threading.Lock()
        refuse_foreign(path, "reply cache", lambda entry: ENTRY_KEYS <= entry.keys())  # before any repair
        self._out = JsonlWriter(path)  # created if missing; held open, locked, until close
        try:
            fcntl.flock(self._out.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            alone = True
        except BlockingIOError:  # another live run has it open
            alone = False
        self._load(repair=alone)
        fcntl.flock(self._out.fd, fcntl.LOCK_SH)  # downgraded: other runs may share it now

    def _load(self, repair):
        bad = 0
        for line in complete_lines(self.path, repair):
            try:
                entry = json.loads(line)
                self._replies[entry["key"], entry["attempt"]] = entry["reply"]
            except (ValueError, KeyError, TypeError):
                bad += 1
        if bad:
            warnings.warn(f"{self.path}: skipped {bad} malformed lines")

    def get(self, key: str, attempt: int) -> Optional[str]:
        """The `attempt`-th reply stored for `key`, or None."""
        with self._lock:
            return self._replies.get((key, attempt))

    def put(self, key: str, attempt: int, reply: str) -> None:
        with self._lock:
            self._replies[key, attempt] = reply
            self._out.write({"key": key, "attempt": attempt, "reply": reply})

    def __len__(self):
        return len(self._replies)

    def close(self) -> None:
        self._out.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
