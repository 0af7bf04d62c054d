"""The closing lines of a run: local (and linked) F1 from the metrics files beside its outputs.

    python -m inference.reports.summary RESULTS_DIR/ori    # reads ori.jsonl.metrics.json, ori.linked.jsonl.metrics.json
"""

from __future__ import annotations

import argparse
import json
from typing import Optional

from utils.cli import run_cli
from utils.errors import DataError


def score_line(name: str, path: str) -> str:
    with open(path, encoding="utf-8") as f:
        try:
            metrics = json.load(f)
            metrics = metrics.get("linked", metrics)
            metrics["f1"], metrics["precision"], metrics["recall"], metrics["n_gold"]  # noqa: B018
        except (ValueError, AttributeError, KeyError, TypeError):
            raise DataError(f"{path}: not a metrics file with scores") from None
    return (f"{name} F1 {metrics['f1']:.4f}  (P {metrics['precision']:.4f}, R {metrics['recall']:.4f}; "
            f"{metrics['n_gold']} gold entities)  {path}")


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stem", help="RESULTS_DIR/TEST_MODE: reads STEM.jsonl.metrics.json and STEM.linked.jsonl.metrics.json")
    return run_cli(summarise, parser.parse_args(argv).stem)


def summarise(stem: str) -> None:
    print(score_line("local ", stem + ".jsonl.metrics.json"))
    try:
        print(score_line("linked", stem + ".linked.jsonl.metrics.json"))
    except FileNotFoundError:
        print(f"linked: no linked output (a dry run: the prompts are in {stem}.linked.prompts.jsonl)")


if __name__ == "__main__":
    main()
