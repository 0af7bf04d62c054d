"""Convert any readable NER file to the paper's spanner JSON.

    python -m dataloaders.convert IN OUT [--format auto|column|spanner|text] [--column N] [--overwrite]

An existing OUT is replaced only with --overwrite, and only when it is a spanner JSON file.

Writes [{"context": "w1 w2 ...", "span_posLabel": {"start;end": "LABEL"}}] with inclusive word
indices, laid out as the LinkNER / SpanNER files are (sorted keys, indent 2, UTF-8 as is).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional

from dataloaders.readers import Sentence, read_dataset
from utils.cli import run_cli
from utils.errors import DataError
from utils.owned_output import refuse_inputs


def to_spanner_records(sentences: list[Sentence]) -> list[dict]:
    """Sentences to spanner records; unlabelled sentences get no spans."""
    records = []
    for i, sent in enumerate(sentences):
        # the context is split on whitespace when read back, so words must survive that
        bad = [w for w in sent.words if not w or w.split() != [w]]
        if bad:
            raise DataError(f"sentence {i}: word {bad[0]!r} is empty or contains whitespace")
        spans = {f"{s};{e}": label for s, e, label in sent.entities or []}
        records.append({"context": " ".join(sent.words), "span_posLabel": spans})
    return records


def write_spanner_json(sentences: list[Sentence], path: str) -> int:
    """Write `sentences` to `path` as spanner JSON, creating its folder; returns the record count."""
    records = to_spanner_records(sentences)
    if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(records, f, sort_keys=True, ensure_ascii=False, indent=2)
    return len(records)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--format", default="auto", choices=["auto", "column", "spanner", "text"])
    parser.add_argument("--column", type=int, default=-1, help="tag column of a column file (default: last)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT when it is an earlier spanner JSON file")
    args = parser.parse_args(argv)
    return run_cli(convert, args.input, args.output, args.format, args.column, args.overwrite)


def _is_spanner_json(path):
    try:
        with open(path, encoding="utf-8-sig") as f:
            data = json.load(f)
    except (UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, list) and all(isinstance(r, dict) and "context" in r for r in data)


def check_target(target: str, overwrite: bool = False) -> None:
    """A DataError unless `target` is new, empty, or (with `overwrite`) an earlier spanner JSON
    file: a data split in columns, weights, a config, a tokenizer file or a cache is never replaced."""
    if os.path.isdir(target):
        raise DataError(f"{target}: is a directory; choose an output file")
    if not os.path.isfile(target) or os.path.getsize(target) == 0:
        return
    if not overwrite:
        raise DataError(f"{target}: exists; it is left alone: choose another OUT, or give --overwrite to replace "
                        "an earlier spanner JSON file")
    if not _is_spanner_json(target):
        raise DataError(f"{target}: exists and is not a spanner JSON file; --overwrite replaces only those, so it "
                        "is left alone: choose another OUT")


def convert(source: str, target: str, fmt: str = "auto", column: int = -1, overwrite: bool = False) -> int:
    """Read `source`, write `target` (never the same file, nor a file that is not an earlier
    conversion's); 0."""
    refuse_inputs(target, {"IN": source})
    sentences = read_dataset(source, fmt, column=column)
    check_target(target, overwrite)
    n = write_spanner_json(sentences, target)
    n_entities = sum(len(s.entities or []) for s in sentences)
    print(f"wrote {n} sentences with {n_entities} entities to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
