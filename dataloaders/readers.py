"""Read NER data: the paper's spanner JSON, CoNLL column files, and plain text.

Every reader returns a list of `Sentence`. Entities are `(start, end, label)` with word
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
from typing import Optional, TextIO

from seqeval.metrics.sequence_labeling import get_entities

from utils.encoding import not_utf8, nul_problem
from utils.errors import DataError

DOCSTART = "-DOCSTART-"
STDIN = "-"
_stdin_text = []  # standard input, read once: detecting the format and reading both need it
_COLUMNS = re.compile(r"[ \t]+")


def open_text(path: str) -> TextIO:
    """`path` (STDIN: standard input, even from a pipe) as UTF-8 text, a byte-order mark dropped."""
    if path != STDIN:
        return open(path, encoding="utf-8-sig")
    if not _stdin_text:
        _stdin_text.append(sys.stdin.buffer.read())
    return io.StringIO(_stdin_text[0].decode("utf-8-sig"))


def _head_bytes(path, n=4096):
    """The first bytes of `path` (STDIN: of what was read from it)."""
    if path == STDIN:
        return _stdin_text[0][:n] if _stdin_text else b""
    with open(path, "rb") as f:
        return f.read(n)


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


def read_spanner_json(path: str, labels: Optional[list[str]] = None) -> list[Sentence]:
    """The paper's format: [{"context": "w1 w2", "span_posLabel": {"s;e": "LABEL"}}]."""
    try:
        with open_text(path) as f:
            records = json.load(f)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
    if not isinstance(records, list):
        raise DataError(f"{path}: expected a JSON list of records, got {type(records).__name__}")
    sentences, empty = [], 0
    for i, rec in enumerate(records):
        where = f"{path}: record {i}"
        if not isinstance(rec, dict) or not isinstance(rec.get("context"), str):
            raise DataError(f"{where}: expected an object with a string 'context'")
        words = rec["context"].split()
        if not words or words == [DOCSTART]:
            empty += not words
            continue
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
        sentences.append(Sentence(words, sorted(entities)))
    if empty:
        warnings.warn(f"{path}: skipped {empty} records with an empty context")
    return sentences


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


def read_column_file(path: str, column: int = -1, labels: Optional[list[str]] = None) -> list[Sentence]:
    """CoNLL columns: `word ... TAG` per line, blank line between sentences. A file of
    -DOCSTART- lines only has no sentence to read: a DataError."""
    sentences, words, tags, start_line, markers = [], [], [], 1, 0

    def flush() -> None:
        if words and words[0] != DOCSTART:
            where = f"{path}: sentence at line {start_line}"
            entities = _tag_entities(tags, where)
            _check_entities(entities, len(words), where, labels)
            sentences.append(Sentence(list(words), entities))
        words.clear()
        tags.clear()

    with open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            cols = _columns(line)
            if cols == [""]:
                flush()
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
    flush()
    if markers and not sentences:
        raise DataError(f"{path}: only {DOCSTART} lines, no sentence to read")
    return sentences


def read_plain_text(path: str) -> list[Sentence]:
    """One sentence or paragraph per line; words split by `dataloaders.text.tokenize`."""
    from dataloaders.text import tokenize

    sentences = []
    with open_text(path) as f:
        for line in f:
            line = line.rstrip("\n")
            words, spans = tokenize(line)
            if words:
                sentences.append(Sentence(words, None, text=line, char_spans=spans))
    return sentences


def detect_format(path: str) -> str:
    """'spanner', 'column' or 'text', from the extension and the first lines."""
    if path.endswith(".json") or os.path.basename(path).startswith("spanner."):
        return "spanner"
    with open_text(path) as f:
        head = [line for _, line in zip(range(50), f)]
    if head and head[0].lstrip().startswith("["):
        return "spanner"
    rows = [_columns(line) for line in head if line.strip(" \t\r\n") and not line.startswith(DOCSTART)]
    if not rows and any(line.startswith(DOCSTART) for line in head):
        return "column"  # document markers and nothing else: a column file without sentences
    is_tag = lambda t: t == "O" or (len(t) > 2 and t[1] == "-" and t[0] in "BIESLU")
    # Mostly `word ... TAG` lines: a column file, so that a bad line gets the column reader's error.
    if rows and 2 * sum(len(r) >= 2 and is_tag(r[-1]) for r in rows) > len(rows):
        return "column"
    return "text"


def read_dataset(path: str, fmt: str = "auto", labels: Optional[list[str]] = None,
                 column: int = -1) -> list[Sentence]:
    """Read any supported file (STDIN: standard input); `labels` (a list) makes unknown labels an
    error. Text that is not UTF-8 is a DataError naming the file."""
    if path != STDIN and not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    readers = {"spanner": lambda: read_spanner_json(path, labels), "column": lambda: read_column_file(path, column, labels),
               "text": lambda: read_plain_text(path)}
    try:
        open_text(path).close()  # standard input is read here, once
        problem = nul_problem(path, _head_bytes(path))
        if problem:
            raise DataError(problem)
        fmt = detect_format(path) if fmt == "auto" else fmt
        if fmt not in readers:
            raise DataError(f"{path}: unknown format {fmt!r} (spanner, column, text)")
        return readers[fmt]()
    except UnicodeDecodeError as err:
        raise DataError(not_utf8(path, err, _head_bytes(path))) from None


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
    base = data_dir if split != "test" or test_mode == "ori" else os.path.join(data_dir, test_mode)
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
