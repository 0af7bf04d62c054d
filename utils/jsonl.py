"""JSON Lines files that survive being killed: one record per line, flushed as written,
and on restart a torn last line is cut off (with a warning) and the complete ones are kept.

The one JSONL reader and writer of the project: outputs of both stages, the LLM reply cache
and the HTML report all go through it.
"""

from __future__ import annotations

import json
import os
import warnings
from typing import Any, Callable, Iterable, Iterator, Optional

from utils.encoding import not_utf8
from utils.errors import DataError


def read_jsonl(path: str, check: Optional[Callable[[Any], Optional[str]]] = None) -> list[Any]:
    """All records of a JSONL file (see `iter_jsonl`)."""
    return list(iter_jsonl(path, check))


def iter_jsonl(path: str, check: Optional[Callable[[Any], Optional[str]]] = None) -> Iterator[Any]:
    """The records of a JSONL file one at a time, blank lines skipped: memory does not grow
    with the file. A malformed line, or one for which `check(record)` returns a message, is a
    DataError naming the file and line, raised when the reader reaches it."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    with open(path, encoding="utf-8-sig") as f:  # a byte-order mark is not part of the first record
        try:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    yield _parse(line, check, f"{path}: line {lineno}")
        except UnicodeDecodeError as err:
            with open(path, "rb") as raw:
                raise DataError(not_utf8(path, err, raw.read(4096))) from None


def _parse(line, check, where):
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise DataError(f"{where}: malformed JSON ({err.msg})") from None
    problem = check(record) if check else None
    if problem:
        raise DataError(f"{where}: {problem}")
    return record


def complete_lines(path: str, repair: bool = True) -> list[str]:
    """The complete lines of an append-only file. A last line without its newline is cut off
    when `repair` (a kill left it unfinished); without (another live process may be writing it
    as we read, as two runs sharing a reply cache do) it is only left out."""
    if repair:
        cut_partial_line(path)
    with open(path, "rb") as f:
        data = f.read()
    return data[:data.rfind(b"\n") + 1].decode("utf-8").splitlines()


def iter_resumed(path: str, check: Optional[Callable[[Any], Optional[str]]] = None) -> Iterator[Any]:
    """Records already complete in `path`, one at a time, for a restarted run (its partial last
    line cut off first, see `cut_partial_line`). A missing file has none."""
    if not os.path.isfile(path):
        return iter(())
    cut_partial_line(path)
    return iter_jsonl(path, check)


def cut_partial_line(path: str) -> None:
    """Cut off a last line without its newline (a kill left it unfinished), with a warning,
    reading only the file's tail."""
    with open(path, "r+b") as f:
        end = f.seek(0, os.SEEK_END)
        pos = end
        while pos > 0:
            step = min(pos, 1 << 16)
            f.seek(pos - step)
            block = f.read(step)
            newline = block.rfind(b"\n")
            if newline >= 0:
                pos = pos - step + newline + 1
                break
            pos -= step
        if pos < end:
            warnings.warn(f"{path}: dropped a partial last line (a run was killed while writing it)")
            f.truncate(pos)


def offset_records(path: str, check: Optional[Callable[[Any], Optional[str]]] = None) -> Iterator[tuple[int, Any]]:
    """(the byte offset where its line starts, record) for each record of `path`, one at a
    time, checked as `iter_jsonl` checks them; the offsets are where `os.truncate` may cut."""
    with open(path, "rb") as f:
        offset = 0
        for lineno, line in enumerate(f, 1):
            if line.strip():
                try:
                    text = line.decode("utf-8-sig" if lineno == 1 else "utf-8")
                except UnicodeDecodeError as err:
                    raise DataError(not_utf8(path, err, line[:4096])) from None
                yield offset, _parse(text, check, f"{path}: line {lineno}")
            offset += len(line)


def resume_jsonl(path: str, check: Optional[Callable[[Any], Optional[str]]] = None) -> list[Any]:
    """`iter_resumed` as a list."""
    return list(iter_resumed(path, check))


def rewrite_jsonl(path: str, records: Iterable[Any]) -> None:
    """Replace `path` by `records`, atomically: a kill leaves the old file or the new one."""
    with JsonlWriter(path + ".part", append=False) as out:
        for record in records:
            out.write(record)
    os.replace(path + ".part", path)


_ENCODER = json.JSONEncoder(ensure_ascii=False)  # what json.dumps(..., ensure_ascii=False) builds per call


class JsonlWriter:
    """Append records, one line each, so a crash loses at most the line being written. Each
    line goes to the file in one `write` call on a file opened for appending, so lines that
    several processes append to one file (a shared reply cache) never interleave."""

    def __init__(self, path, append=True):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
        self.fd = os.open(path, flags, 0o666)

    @staticmethod
    def line(record: Any) -> str:
        """`record` as the line `write` writes (`json.dumps(record, ensure_ascii=False)`)."""
        return _ENCODER.encode(record) + "\n"

    def write(self, record: Any) -> None:
        data = memoryview(self.line(record).encode("utf-8"))
        while data:  # a regular file takes it whole; a short write (disk full) is finished or raises
            data = data[os.write(self.fd, data):]

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
