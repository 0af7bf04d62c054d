"""JSON Lines files that survive being killed: one record per line, flushed as written,
and on restart a torn last line is cut off (with a warning) and the complete ones are kept.

The one JSONL reader and writer of the project: outputs of both stages, the LLM reply cache
and the HTML report all go through it.
"""
import json
import os
import warnings

from utils.errors import DataError


def read_jsonl(path, check=None):
    """All records of a JSONL file, blank lines skipped.

    A malformed line, or one for which `check(record)` returns a message, is a DataError
    naming the file and line.
    """
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    records = []
    with open(path, encoding="utf-8-sig") as f:  # a byte-order mark is not part of the first record
        try:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    records.append(_parse(line, check, f"{path}: line {lineno}"))
        except UnicodeDecodeError as err:
            raise DataError(f"{path}: not UTF-8 text ({err.reason})") from None
    return records


def _parse(line, check, where):
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise DataError(f"{where}: malformed JSON ({err.msg})") from None
    problem = check(record) if check else None
    if problem:
        raise DataError(f"{where}: {problem}")
    return record


def complete_lines(path):
    """The lines of an append-only file, after cutting off a last line that a kill left unfinished."""
    with open(path, "rb") as f:
        data = f.read()
    complete = data.rfind(b"\n") + 1
    if complete < len(data):
        warnings.warn(f"{path}: dropped a partial last line (a run was killed while writing it)")
        with open(path, "r+b") as f:
            f.truncate(complete)
    return data[:complete].decode("utf-8").splitlines()


def resume_jsonl(path, check=None):
    """Records already complete in `path`, for a restarted run (see `complete_lines`).
    A missing file has none."""
    if not os.path.isfile(path):
        return []
    complete_lines(path)
    return read_jsonl(path, check)


def rewrite_jsonl(path, records):
    """Replace `path` by `records`, atomically: a kill leaves the old file or the new one."""
    with JsonlWriter(path + ".part", append=False) as out:
        for record in records:
            out.write(record)
    os.replace(path + ".part", path)


class JsonlWriter:
    """Append records, one flushed line each, so a crash loses at most the line being written."""

    def __init__(self, path, append=True):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.f = open(path, "a" if append else "w", encoding="utf-8")

    def write(self, record):
        self.f.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.f.flush()

    def close(self):
        self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
