"""Read NER data: the paper's spanner JSON, JSON Lines, CoNLL column files, and plain text.

Every reader has two forms: `iter_*` yields one `Sentence` at a time as it reads (memory does
not grow with the file: a corpus of any size streams through `iter_dataset`, standard input
included), and `read_*` is its list. Entities are `(start, end, label)` with word
indices inclusive, as in the paper's `"start;end"` keys. Unlabelled input has
`entities=None`, so downstream code can tell "no gold" from "no entities".
"""
import io
import json
import os
import re
import sys
import warnings
from dataclasses import dataclass
from typing import Any, BinaryIO, Iterator, Optional, TextIO

from seqeval.metrics.sequence_labeling import get_entities

from utils.encoding import not_utf8, nul_problem
from utils.errors import DataError

DOCSTART = "-DOCSTART-"
STDIN = "-"
STDIN_HEAD = 1 << 16  # bytes of standard input kept to detect its format, at most
DETECT_LINES = 50  # lines read to detect a file's format
_stdin_head: list[bytes] = []  # standard input's first bytes, read once (format detection and NUL check)
_COLUMNS = re.compile(r"[ \t]+")


class _Replayed(io.RawIOBase):
    """Standard input read as it comes, its first bytes (already read for detection) first."""

    def __init__(self, head: bytes, rest: BinaryIO):
        self.head, self.rest = memoryview(head), rest

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:  # a writable buffer (bytearray, memoryview)
        if self.head:
            n = min(len(b), len(self.head))
            b[:n], self.head = self.head[:n], self.head[n:]
            return n
        # typeshed types sys.stdin.buffer as BinaryIO, which has no read1; it is a BufferedReader
        data = self.rest.read1(len(b))  # type: ignore[attr-defined]
        b[:len(data)] = data
        return len(data)


def _stdin_start() -> bytes:
    if not _stdin_head:  # the lines format detection reads (or less, at the end), not more: a pipe waits
        head = b""
        while head.count(b"\n") < DETECT_LINES and len(head) < STDIN_HEAD:
            data = sys.stdin.buffer.read1(STDIN_HEAD - len(head))  # type: ignore[union-attr]  # as in _Replayed
            if not data:
                break
            head += data
        _stdin_head.append(head)
    return _stdin_head[0]


def open_text(path: str) -> TextIO:
    """`path` (STDIN: standard input, even from a pipe, read as it comes: it can be read
    through once) as UTF-8 text, a byte-order mark dropped."""
    if path != STDIN:
        return open(path, encoding="utf-8-sig")
    return io.TextIOWrapper(io.BufferedReader(_Replayed(_stdin_start(), sys.stdin.buffer)), encoding="utf-8-sig")


def _head_bytes(path, n=4096):
    """The first bytes of `path` (STDIN: of what was read from it)."""
    if path == STDIN:
        return _stdin_start()[:n]
    with open(path, "rb") as f:
        return f.read(n)


def _head_lines(path, n=DETECT_LINES):
    """The first `n` lines of `path` (STDIN: of its first bytes), for format detection."""
    if path == STDIN:
        return io.StringIO(_stdin_start().decode("utf-8-sig", errors="ignore")).readlines()[:n]
    with open_text(path) as f:
        return [line for _, line in zip(range(n), f)]


@dataclass
class Sentence:
    words: list
    entities: Optional[list] = None  # [(start, end, label)], None when unlabelled
    text: Optional[str] = None  # the original line, for raw text input
    char_spans: Optional[list] = None  # per word (start, end) into `text`


def _check_entities(entities, n_words, where, labels):
    """Validate one sentence's gold spans: in range, known labels, no overlaps."""
    taken = {}
    for s, e, label in sorted(entities):
        if not (0 <= s <= e < n_words):
            raise DataError(f"{where}: span {s};{e} lies outside the sentence of {n_words} words")
        if labels is not None and label not in labels:
            raise DataError(f"{where}: unknown label {label!r} (known: {', '.join(labels)})")
        for i in range(s, e + 1):
            if i in taken:
                raise DataError(f"{where}: gold spans {taken[i][0]};{taken[i][1]} and {s};{e} overlap")
            taken[i] = (s, e)


MAX_RECORD = 1 << 26  # characters one JSON record may take before a malformed one is reported


class _JsonReader:
    """Incremental JSON: the values of a text stream, one `raw_decode` at a time, holding only
    the text not yet decoded (a few records; at most `MAX_RECORD` characters past a malformed
    one). Errors name the line and column in the file."""

    READ = 1 << 16  # characters read at a time (more for a longer record)

    def __init__(self, f: TextIO, path: str):
        self.f, self.path, self.buf, self.pos, self.eof = f, path, "", 0, False
        self.line, self.col = 1, 0  # of buf[0]: line number, characters before it on its line
        self.decoder = json.JSONDecoder()

    def _more(self) -> bool:
        """Drop what was decoded and read more; False at the end of the file."""
        if self.eof:
            return False
        done = self.buf[:self.pos]
        newlines = done.count("\n")
        self.line += newlines
        self.col = len(done) - done.rfind("\n") - 1 if newlines else self.col + len(done)
        data = self.f.read(max(self.READ, len(self.buf)))
        self.buf, self.pos, self.eof = self.buf[self.pos:] + data, 0, not data
        return bool(data)

    def error(self, msg: str, pos: Optional[int] = None) -> DataError:
        pos = self.pos if pos is None else pos
        newlines = self.buf.count("\n", 0, pos)
        col = pos - self.buf.rfind("\n", 0, pos) if newlines else self.col + pos + 1
        return DataError(f"{self.path}: malformed JSON at line {self.line + newlines}, column {col}: {msg}")

    def peek(self) -> str:
        """The next character that is not white space ("" at the end), not consumed."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in " \t\r\n":
                self.pos += 1
            if self.pos < len(self.buf) or not self._more():
                return self.buf[self.pos:self.pos + 1]

    def take(self, char: str) -> None:
        if self.peek() != char:
            raise self.error(f"Expecting {char!r}")
        self.pos += 1

    def value(self) -> Any:
        self.peek()
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as err:  # maybe cut by the end of the buffer: read more
                if len(self.buf) - self.pos > MAX_RECORD or not self._more():
                    raise self.error(err.msg, err.pos) from None
                continue
            if end == len(self.buf) and self._more():  # a number cut by the buffer's end decodes short
                continue
            self.pos = end
            return value

    def array(self) -> Iterator[Any]:
        """The items of the one JSON array the stream holds."""
        if self.peek() != "[":
            if self.peek() and self.peek() in "{\"":  # another value: name its type as json.load would read it
                raise DataError(f"{self.path}: expected a JSON list of records, got "
                                f"{type(self.value()).__name__}")
            raise self.error("Expecting '['")
        self.pos += 1
        first = True
        while self.peek() != "]":
            if not first:
                self.take(",")
            first = False
            yield self.value()
        self.pos += 1
        if self.peek():
            raise self.error("Extra data")


def _spanner_sentence(rec: Any, where: str, labels: Optional[list[str]]) -> Optional[Sentence]:
    """One spanner record's sentence; None for a document marker or an empty context."""
    if not isinstance(rec, dict) or not isinstance(rec.get("context"), str):
        raise DataError(f"{where}: expected an object with a string 'context'")
    words = rec["context"].split()
    if not words or words == [DOCSTART]:
        return None
    entities = []
    spans = rec.get("span_posLabel", {})
    if not isinstance(spans, dict):
        raise DataError(f"{where}: 'span_posLabel' must be an object of 'start;end': label")
    for key, label in spans.items():
        try:
            s, e = (int(x) for x in key.split(";"))
        except ValueError:
            raise DataError(f"{where}: span key {key!r} is not 'start;end'") from None
        if not isinstance(label, str) or not label.strip():
            raise DataError(f"{where}: the label of span {key} is {label!r}, not a label name")
        entities.append((s, e, label))
    _check_entities(entities, len(words), where, labels)
    return Sentence(words, sorted(entities))


def iter_spanner_json(path: str, labels: Optional[list[str]] = None) -> Iterator[Sentence]:
    """The paper's format: [{"context": "w1 w2", "span_posLabel": {"s;e": "LABEL"}}], read
    incrementally (one record in memory at a time)."""
    empty = 0
    with open_text(path) as f:
        for i, rec in enumerate(_JsonReader(f, path).array()):
            sent = _spanner_sentence(rec, f"{path}: record {i}", labels)
            empty += sent is None and isinstance(rec, dict) and not rec["context"].split()
            if sent is not None:
                yield sent
    if empty:
        warnings.warn(f"{path}: skipped {empty} records with an empty context")


def read_spanner_json(path: str, labels: Optional[list[str]] = None) -> list[Sentence]:
    """`iter_spanner_json` as a list."""
    return list(iter_spanner_json(path, labels))


def _jsonl_sentence(rec: Any, where: str, labels: Optional[list[str]]) -> Optional[Sentence]:
    """One JSON Lines record: a spanner record ("context", "span_posLabel"), words ("tokens",
    optional "gold" [[start, end, label]], as local_inference.py writes them), or raw text
    ("text", tokenized like a plain text line)."""
    if isinstance(rec, dict) and "context" in rec:
        return _spanner_sentence(rec, where, labels)
    if isinstance(rec, dict) and isinstance(rec.get("tokens"), list):
        words = rec["tokens"]
        if not words or not all(isinstance(w, str) and w and not w.isspace() for w in words):
            raise DataError(f"{where}: 'tokens' must be a non-empty list of words")
        gold = rec.get("gold")
        if gold is None:
            return Sentence(list(words))
        if not isinstance(gold, list) or not all(isinstance(g, list) and len(g) == 3 and isinstance(g[0], int)
                                                 and isinstance(g[1], int) and isinstance(g[2], str) for g in gold):
            raise DataError(f"{where}: 'gold' must be a list of [start, end, label]")
        entities = sorted((s, e, label) for s, e, label in gold)
        _check_entities(entities, len(words), where, labels)
        return Sentence(list(words), entities)
    if isinstance(rec, dict) and isinstance(rec.get("text"), str):
        return _text_sentence(rec["text"])
    raise DataError(f"{where}: expected an object with 'context', 'tokens' or 'text'")


def iter_jsonl(path: str, labels: Optional[list[str]] = None) -> Iterator[Sentence]:
    """JSON Lines, one record per line (see `_jsonl_sentence`); blank lines, document markers and
    empty texts skipped."""
    with open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}: line {lineno}: malformed JSON ({err.msg})") from None
            sent = _jsonl_sentence(rec, f"{path}: line {lineno}", labels)
            if sent is not None:
                yield sent


def _tag_entities(tags, where):
    """BIO, IOB1 and IOBES tags to (start, end, label); seqeval's chunker reads all three."""
    for t in tags:
        if t != "O" and (len(t) < 3 or t[1] != "-" or t[0] not in "BIESLU"):
            raise DataError(f"{where}: tag {t!r} is not O or a B-/I-/E-/S- tag")
    tags = [("B" if t[0] == "U" else "E" if t[0] == "L" else t[0]) + t[1:] if t != "O" else t for t in tags]
    return [(s, e, label) for label, s, e in get_entities(tags)]


def _columns(line):
    """A column line's fields, split on spaces and tabs only: some tweets have a no-break
    space as a word, which str.split() would drop."""
    return _COLUMNS.split(line.strip(" \t\r\n"))


def iter_column_file(path: str, column: int = -1, labels: Optional[list[str]] = None) -> Iterator[Sentence]:
    """CoNLL columns: `word ... TAG` per line, blank line between sentences. A file of
    -DOCSTART- lines only has no sentence to read: a DataError."""
    words: list[str] = []
    tags: list[str] = []
    start_line, markers, found = 1, 0, 0

    def sentence() -> Optional[Sentence]:
        sent = None
        if words and words[0] != DOCSTART:
            where = f"{path}: sentence at line {start_line}"
            entities = _tag_entities(tags, where)
            _check_entities(entities, len(words), where, labels)
            sent = Sentence(list(words), entities)
        words.clear()
        tags.clear()
        return sent

    with open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            cols = _columns(line)
            if cols == [""]:
                sent = sentence()
                if sent:
                    found += 1
                    yield sent
                start_line = lineno + 1
                continue
            if cols[0] == DOCSTART:
                markers += 1
                continue
            if len(cols) < 2:
                raise DataError(f"{path}: line {lineno}: expected 'word TAG', got {line.strip()!r}")
            if not words:
                start_line = lineno
            words.append(cols[0])
            try:
                tags.append(cols[column])
            except IndexError:
                raise DataError(f"{path}: line {lineno}: no column {column} in {line.strip()!r}") from None
    sent = sentence()
    if sent:
        found += 1
        yield sent
    if markers and not found:
        raise DataError(f"{path}: only {DOCSTART} lines, no sentence to read")


def read_column_file(path: str, column: int = -1, labels: Optional[list[str]] = None) -> list[Sentence]:
    """`iter_column_file` as a list."""
    return list(iter_column_file(path, column, labels))


def _text_sentence(line: str) -> Optional[Sentence]:
    """A raw text line's sentence, words split by `dataloaders.text.tokenize`; None when it has no word."""
    from dataloaders.text import tokenize

    words, spans = tokenize(line)
    return Sentence(words, None, text=line, char_spans=spans) if words else None


def iter_plain_text(path: str) -> Iterator[Sentence]:
    """One sentence or paragraph per line; words split by `dataloaders.text.tokenize`."""
    with open_text(path) as f:
        for line in f:
            sent = _text_sentence(line.rstrip("\n"))
            if sent is not None:
                yield sent


def read_plain_text(path: str) -> list[Sentence]:
    """`iter_plain_text` as a list."""
    return list(iter_plain_text(path))


FORMATS = ("spanner", "jsonl", "column", "text")


def _is_tag(t: str) -> bool:
    return t == "O" or (len(t) > 2 and t[1] == "-" and t[0] in "BIESLU")


def detect_format(path: str) -> str:
    """'spanner', 'jsonl', 'column' or 'text', from the extension and the first lines."""
    if path.endswith(".json") or os.path.basename(path).startswith("spanner."):
        return "spanner"
    if path.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    head = _head_lines(path)
    if head and head[0].lstrip().startswith("["):
        return "spanner"
    if head and head[0].lstrip().startswith("{"):
        return "jsonl"
    rows = [_columns(line) for line in head if line.strip(" \t\r\n") and not line.startswith(DOCSTART)]
    if not rows and any(line.startswith(DOCSTART) for line in head):
        return "column"  # document markers and nothing else: a column file without sentences
    # Mostly `word ... TAG` lines: a column file, so that a bad line gets the column reader's error.
    if rows and 2 * sum(len(r) >= 2 and _is_tag(r[-1]) for r in rows) > len(rows):
        return "column"
    return "text"


def iter_dataset(path: str, fmt: str = "auto", labels: Optional[list[str]] = None,
                 column: int = -1) -> Iterator[Sentence]:
    """The sentences of any supported file (STDIN: standard input), one at a time as they are
    read; `labels` (a list) makes unknown labels an error. The file, its format and its first
    bytes are checked at once; a problem further on (bad JSON, text that is not UTF-8) is a
    DataError naming the file, raised when the reader reaches it."""
    if path != STDIN and not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    readers = {"spanner": lambda: iter_spanner_json(path, labels), "jsonl": lambda: iter_jsonl(path, labels),
               "column": lambda: iter_column_file(path, column, labels), "text": lambda: iter_plain_text(path)}
    try:
        problem = nul_problem(path, _head_bytes(path))
        if problem:
            raise DataError(problem)
        fmt = detect_format(path) if fmt == "auto" else fmt
    except UnicodeDecodeError as err:
        raise DataError(not_utf8(path, err, _head_bytes(path))) from None
    if fmt not in readers:
        raise DataError(f"{path}: unknown format {fmt!r} ({', '.join(FORMATS)})")
    return _decoded(path, readers[fmt]())


def _decoded(path: str, sentences: Iterator[Sentence]) -> Iterator[Sentence]:
    try:
        yield from sentences
    except UnicodeDecodeError as err:
        raise DataError(not_utf8(path, err, _head_bytes(path))) from None


def read_dataset(path: str, fmt: str = "auto", labels: Optional[list[str]] = None,
                 column: int = -1) -> list[Sentence]:
    """`iter_dataset` as a list: every sentence of the file."""
    return list(iter_dataset(path, fmt, labels, column))


SPLIT_FILES = {"train": ["spanner.train", "train.txt", "train.json"],
               "dev": ["spanner.dev", "dev.txt", "dev.json", "valid.txt"],
               "test": ["spanner.test", "test.txt", "test.json"]}


def split_path(data_dir: str, split: str, test_mode: Optional[str]) -> str:
    """Locate a split in a data directory (the paper's layout or train/dev/test.txt).

    `test_mode` (the test split's only; None for train and dev) ori is the original test set,
    typos / oov / ood pick the CoNLL-2003 robustness test sets in sub-folders.
    """
    if not os.path.isdir(data_dir):
        raise DataError(f"{data_dir}: no such directory")
    if split != "test" or test_mode == "ori":
        base = data_dir
    elif test_mode is None:
        raise ValueError("split_path: the test split needs a test_mode (ori, typos, oov or ood)")
    else:
        base = os.path.join(data_dir, test_mode)
    for name in SPLIT_FILES[split]:
        if os.path.isfile(os.path.join(base, name)):
            return os.path.join(base, name)
    raise DataError(f"{base}: no {split} file (looked for {', '.join(SPLIT_FILES[split])})")


def load_labels(data_dir: Optional[str], sentences: list[Sentence]) -> list[str]:
    """The label list, `O` first: from `labels.txt` in `data_dir` if present, else from the data."""
    path = os.path.join(data_dir, "labels.txt") if data_dir else None
    if path and os.path.isfile(path):
        with open_text(path) as f:
            found = [line.strip() for line in f if line.strip() and line.strip() != "O"]
    else:
        found = sorted({label for s in sentences for _, _, label in (s.entities or [])})
    return ["O"] + found
