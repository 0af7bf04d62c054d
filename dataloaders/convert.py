"""Convert any readable NER file to the paper's spanner JSON.

    python -m dataloaders.convert IN OUT [--format auto|column|spanner|text] [--column N]

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
    args = parser.parse_args(argv)
    return run_cli(convert, args.input, args.output, args.format, args.column)


def convert(source: str, target: str, fmt: str = "auto", column: int = -1) -> int:
    """Read `source`, write `target` (never the same file); 0."""
    refuse_inputs(target, {"IN": source})
    sentences = read_dataset(source, fmt, column=column)
    n = write_spanner_json(sentences, target)
    n_entities = sum(len(s.entities or []) for s in sentences)
    print(f"wrote {n} sentences with {n_entities} entities to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
